"""The client of the router protocol: ``POST {node}/v1/agents/{agent}/infer``.

Every way a node can fail becomes a :class:`NodeError` with a ``kind``
(``refused``, ``timeout``, ``http_status``, ``bad_response``); timeouts are
:class:`NodeTimeout`, everything else :class:`NodeUnavailable`. A node with too many sends
in flight is not called at all (:class:`NodeBusy`, from ``nodes.bulkhead``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests
import urllib3
from django.conf import settings

from nodes.metrics import INFER_DURATION, INFER_REQUESTS
from nodes.registry import node_exists, node_url
from nodes.transport import http_session, request_id_headers

logger = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 4 * 1024 * 1024
_CONNECT_TIMEOUT = 3.05


class NodeError(Exception):
    code = "node_unavailable"

    def __init__(self, node: str, kind: str, detail: str) -> None:
        super().__init__(f"{node}: {detail}")
        self.node = node
        self.kind = kind
        self.detail = detail


class NodeUnavailable(NodeError):
    code = "node_unavailable"


class NodeTimeout(NodeError):
    code = "node_timeout"


class NodeBusy(NodeError):
    """The node already has ``SOFIIA_NODE_MAX_INFLIGHT`` sends in flight; it was not called."""

    code = "node_busy"


@dataclass(frozen=True)
class InferResult:
    response: str
    model: str | None
    tokens_used: int | None
    backend: str | None
    # How long the node took, from the request to the last byte of its answer.
    latency_ms: int = 0


def infer_body_bytes(body: Mapping[str, Any]) -> bytes:
    """The exact bytes a node is sent for ``body``: one definition for the call and for the
    digest the audit trail keeps of it (``audit_prompt`` rebuilds and compares them)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _read_body(response: requests.Response, node: str, deadline: float) -> bytes:
    """Read at most MAX_RESPONSE_BYTES, and no longer than the infer timeout in total:
    ``requests`` applies its timeout per socket read, which a trickling node could stretch."""
    chunks: list[bytes] = []
    size = 0
    while chunk := response.raw.read1(65536, decode_content=True):
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise NodeUnavailable(node, "bad_response", f"response larger than {MAX_RESPONSE_BYTES} bytes")
        if time.monotonic() > deadline:
            raise NodeTimeout(node, "timeout", "response did not complete within the infer timeout")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_result(node: str, raw: bytes) -> InferResult:
    try:
        body: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise NodeUnavailable(node, "bad_response", "response is not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("response"), str):
        raise NodeUnavailable(node, "bad_response", 'response JSON has no string "response"')
    model, backend, tokens = body.get("model"), body.get("backend"), body.get("tokens_used")
    if (model is not None and not isinstance(model, str)) or (backend is not None and not isinstance(backend, str)):
        raise NodeUnavailable(node, "bad_response", '"model" and "backend" must be strings')
    if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, int)):
        raise NodeUnavailable(node, "bad_response", '"tokens_used" must be an integer or null')
    return InferResult(response=body["response"], model=model, tokens_used=tokens, backend=backend)


def infer(*, node: str, agent: str, body: Mapping[str, Any], timeout: float | None = None) -> InferResult:
    """Ask ``agent`` on ``node`` to answer the infer ``body`` (the protocol's JSON object:
    ``prompt``, ``messages``, ``system_prompt``, ``model``, ``temperature``, ``max_tokens``);
    raise :class:`NodeError` on any failure."""
    if not node_exists(node):
        raise NodeUnavailable(node, "unknown_node", "node is not configured in SOFIIA_NODES")
    if agent in (".", ".."):
        # A dot segment would climb the node's URL path (/v1/agents/../infer is /v1/infer).
        raise NodeUnavailable(node, "bad_agent", f"agent name {agent!r} is not a path segment")
    timeout = settings.SOFIIA_INFER_TIMEOUT if timeout is None else timeout
    url = f"{node_url(node)}/v1/agents/{quote(agent, safe='')}/infer"
    started = time.monotonic()
    outcome = "ok"
    try:
        try:
            response = http_session().post(
                url,
                data=infer_body_bytes(body),
                headers={**request_id_headers(), "Content-Type": "application/json"},
                timeout=(min(_CONNECT_TIMEOUT, timeout), timeout),
                stream=True,
            )
        except requests.Timeout:
            raise NodeTimeout(node, "timeout", f"no answer within {timeout:g} s") from None
        except requests.RequestException as exc:
            raise NodeUnavailable(node, "refused", f"connection failed ({type(exc).__name__})") from None
        with response:
            if response.status_code != 200:
                raise NodeUnavailable(node, "http_status", f"answered HTTP {response.status_code}")
            try:
                raw = _read_body(response, node, started + timeout)
            except (requests.Timeout, urllib3.exceptions.TimeoutError):
                raise NodeTimeout(node, "timeout", f"no answer within {timeout:g} s") from None
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                raise NodeUnavailable(node, "refused", f"connection broke ({type(exc).__name__})") from None
        result = _parse_result(node, raw)
        return dataclasses.replace(result, latency_ms=round((time.monotonic() - started) * 1000))
    except NodeError as exc:
        outcome = exc.kind
        raise
    finally:
        elapsed = time.monotonic() - started
        INFER_REQUESTS.labels(node=node, outcome=outcome).inc()
        INFER_DURATION.labels(node=node).observe(elapsed)
        logger.info(
            "infer",
            extra={"node": node, "agent": agent, "outcome": outcome, "duration_ms": round(elapsed * 1000, 1)},
        )
