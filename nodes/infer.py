"""The client of the router protocol: ``POST {node}/v1/agents/{agent}/infer``.

The call goes through the bounded client (:mod:`nodes.client`): a total deadline of
``SOFIIA_INFER_TIMEOUT``, an answer of at most ``SOFIIA_NODE_MAX_RESPONSE_BYTES``, no
redirects. The answer must be ``{"response": text, "model": text|null, "backend":
text|null, "tokens_used": int|null}`` with text a database can store, ``model`` and
``backend`` of at most 200 characters and ``tokens_used`` from 0 to 10⁹; anything else is a
node failure. Every failure is a :class:`NodeError` with a ``kind`` and a ``failure`` code
from closed sets, documented in :mod:`nodes.errors` (``node_unknown``, ``node_bad_agent``,
``node_busy``, ``node_refused``, ``node_timeout``, ``node_http_error``, ``node_redirect``,
``node_too_large``, ``node_bad_response``); timeouts are :class:`NodeTimeout`, everything
else :class:`NodeUnavailable`. A node with too many sends in flight is not called at all
(:class:`NodeBusy`, from ``nodes.bulkhead``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from django.conf import settings

from nodes.client import max_response_bytes, node_call
from nodes.errors import NodeBusy, NodeError, NodeTimeout, NodeUnavailable
from nodes.metrics import INFER_DURATION, INFER_REQUESTS, NODE_TOKENS
from nodes.registry import node_exists, node_label, node_model_label, node_url

__all__ = [
    "MAX_NAME_LENGTH",
    "MAX_TOKENS_USED",
    "InferResult",
    "NodeBusy",
    "NodeError",
    "NodeTimeout",
    "NodeUnavailable",
    "infer",
    "infer_body_bytes",
]
from sofiia.lib.text import is_storable

logger = logging.getLogger(__name__)

# Message.model and Message.backend hold this many characters.
MAX_NAME_LENGTH = 200
MAX_TOKENS_USED = 10**9


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


def _name(node: str, body: dict[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise NodeUnavailable(node, "bad_response", f'"{field}" must be a string or null')
    if len(value) > MAX_NAME_LENGTH:
        raise NodeUnavailable(node, "out_of_range", f'"{field}" is over {MAX_NAME_LENGTH} characters')
    if not is_storable(value):
        raise NodeUnavailable(node, "unstorable_text", f'"{field}" holds NUL or a lone surrogate')
    return value


def _parse_result(node: str, body: Any, latency_ms: int) -> InferResult:
    if not isinstance(body, dict) or not isinstance(body.get("response"), str):
        raise NodeUnavailable(node, "bad_response", 'answer JSON has no string "response"')
    if not is_storable(body["response"]):
        raise NodeUnavailable(node, "unstorable_text", '"response" holds NUL or a lone surrogate')
    model, backend = _name(node, body, "model"), _name(node, body, "backend")
    tokens = body.get("tokens_used")
    if tokens is not None:
        if isinstance(tokens, bool) or not isinstance(tokens, int):
            raise NodeUnavailable(node, "bad_response", '"tokens_used" must be an integer or null')
        if not 0 <= tokens <= MAX_TOKENS_USED:
            raise NodeUnavailable(node, "out_of_range", f'"tokens_used" is not within 0..{MAX_TOKENS_USED}')
    return InferResult(
        response=body["response"], model=model, tokens_used=tokens, backend=backend, latency_ms=latency_ms
    )


def infer(*, node: str, agent: str, body: Mapping[str, Any], timeout: float | None = None) -> InferResult:
    """Ask ``agent`` on ``node`` to answer the infer ``body`` (the protocol's JSON object:
    ``prompt``, ``messages``, ``system_prompt``, ``model``, ``temperature``, ``max_tokens``);
    raise :class:`NodeError` on any failure."""
    label = node_label(node)
    started = time.monotonic()
    outcome = "ok"
    try:
        if not node_exists(node):
            raise NodeUnavailable(node, "unknown_node", "node is not configured in SOFIIA_NODES")
        if agent in (".", ".."):
            # A dot segment would climb the node's URL path (/v1/agents/../infer is /v1/infer).
            raise NodeUnavailable(node, "bad_agent", f"agent name {agent!r} is not a path segment")
        timeout = settings.SOFIIA_INFER_TIMEOUT if timeout is None else timeout
        answer = node_call(
            node=node,
            url=f"{node_url(node)}/v1/agents/{quote(agent, safe='')}/infer",
            method="POST",
            body=infer_body_bytes(body),
            timeout=timeout,
            max_bytes=max_response_bytes(),
        )
        result = _parse_result(node, answer, round((time.monotonic() - started) * 1000))
    except NodeError as exc:
        outcome = exc.kind
        raise
    finally:
        elapsed = time.monotonic() - started
        INFER_REQUESTS.labels(node=label, outcome=outcome).inc()
        INFER_DURATION.labels(node=label).observe(elapsed)
        logger.info(
            "infer",
            extra={"node": node, "agent": agent, "outcome": outcome, "duration_ms": round(elapsed * 1000, 1)},
        )
    if result.tokens_used:
        NODE_TOKENS.labels(node=label, model=node_model_label(node, result.model)).inc(result.tokens_used)
    return result
