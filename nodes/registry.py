"""The registry of router nodes (``SOFIIA_NODES``) and their health probe."""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import requests
from django.conf import settings
from django.core.cache import cache

from nodes.transport import http_session, request_id_headers
from sofiia.lib.request_id import current_request_id

NODE_STATUS_CACHE_KEY = "sofiia:node-status"
# What a chat accepts as an agent (chats.validators): no dot segments.
_AGENT_NAME = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9_.-]{1,64}$")
MAX_ADVERTISED_AGENTS = 100


@dataclass(frozen=True)
class NodeStatus:
    name: str
    status: str  # "up" | "down"
    latency_ms: int | None
    # The agents the node's /health says it offers (``"agents": [name, ...]``), if it says so.
    agents: tuple[str, ...] = ()


def advertised_agents(body: object) -> tuple[str, ...]:
    """Agent names from a /health body: ``{"agents": ["name", ...]}`` or
    ``{"agents": [{"name": ...}, ...]}``; anything else advertises nothing."""
    listed = body.get("agents") if isinstance(body, dict) else None
    if not isinstance(listed, list):
        return ()
    names = (item.get("name") if isinstance(item, dict) else item for item in listed[:MAX_ADVERTISED_AGENTS])
    return tuple(sorted({name for name in names if isinstance(name, str) and _AGENT_NAME.match(name)}))


def node_names() -> list[str]:
    return list(settings.SOFIIA_NODES)


def node_url(name: str) -> str:
    return settings.SOFIIA_NODES[name]


def node_exists(name: str) -> bool:
    return name in settings.SOFIIA_NODES


def default_node() -> str:
    return settings.SOFIIA_DEFAULT_NODE


def node_probe(name: str, *, timeout: float | None = None, request_id: str | None = None) -> NodeStatus:
    """``GET {node}/health``: up when it answers 200 within the probe timeout."""
    timeout = settings.SOFIIA_NODE_PROBE_TIMEOUT if timeout is None else timeout
    started = time.monotonic()
    try:
        response = http_session().get(
            f"{node_url(name)}/health", headers=request_id_headers(request_id), timeout=timeout
        )
        content = response.content[:65537]
        response.close()
    except requests.RequestException:
        return NodeStatus(name=name, status="down", latency_ms=None)
    latency_ms = round((time.monotonic() - started) * 1000)
    if response.status_code != 200:
        return NodeStatus(name=name, status="down", latency_ms=latency_ms)
    try:
        body = json.loads(content) if len(content) <= 65536 else None
    except ValueError:
        body = None  # up, and says nothing more
    return NodeStatus(name=name, status="up", latency_ms=latency_ms, agents=advertised_agents(body))


def node_statuses() -> list[NodeStatus]:
    """Every node's status, probed in parallel and cached for a few seconds."""
    cached = cache.get(NODE_STATUS_CACHE_KEY)
    if cached is not None:
        return [NodeStatus(**item) for item in cached]
    names = node_names()
    # The pool's threads do not see this request's context: its id is handed over.
    request_id = current_request_id()
    with ThreadPoolExecutor(max_workers=min(8, len(names))) as pool:
        statuses = list(pool.map(lambda name: node_probe(name, request_id=request_id), names))
    cache.set(NODE_STATUS_CACHE_KEY, [asdict(s) for s in statuses], settings.SOFIIA_NODE_STATUS_CACHE_SECONDS)
    return statuses
