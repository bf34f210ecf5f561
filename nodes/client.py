"""The one client of every call to a router node (infer, ``/health``, ``/v1/models``).

A node is an untrusted upstream. Each call has a total deadline (headers and body together,
not a timeout per read), a cap on the bytes of the answer, and never follows a redirect; the
answer must be a 200 carrying UTF-8 JSON, and anything else — a 3xx, another status, a
broken connection, too many bytes, bytes that are not UTF-8, JSON that does not parse or is
nested too deep for the parser — is a :class:`~nodes.errors.NodeError` of its own ``kind``.
What the JSON must contain is the caller's business; :func:`sofiia.lib.text.is_storable` tells whether
a string a node sent can be stored as it is.
"""

from __future__ import annotations

import json
import time
from typing import Any

import requests
import urllib3
from django.conf import settings

from nodes.errors import NodeTimeout, NodeUnavailable
from nodes.transport import call_deadline, http_session, request_id_headers

_CONNECT_TIMEOUT = 3.05
_READ_CHUNK = 65536


def max_response_bytes() -> int:
    return int(settings.SOFIIA_NODE_MAX_RESPONSE_BYTES)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def node_call(
    *,
    node: str,
    url: str,
    method: str = "GET",
    body: bytes | None = None,
    timeout: float,
    max_bytes: int,
    request_id: str | None = None,
) -> Any:
    """Call ``url`` on ``node`` and return the JSON value of its 200 answer, or raise
    :class:`~nodes.errors.NodeError` (see :func:`node_fetch`)."""
    raw = node_fetch(
        node=node, url=url, method=method, body=body, timeout=timeout, max_bytes=max_bytes, request_id=request_id
    )
    return parse_json(raw, node=node)


def node_fetch(
    *,
    node: str,
    url: str,
    method: str = "GET",
    body: bytes | None = None,
    timeout: float,
    max_bytes: int,
    request_id: str | None = None,
) -> bytes:
    """Call ``url`` on ``node`` and return the body of its 200 answer, or raise
    :class:`~nodes.errors.NodeError`. Connecting may take up to ``timeout`` (and never more
    than ``_CONNECT_TIMEOUT``); the whole answer — status line, headers and body — must have
    arrived ``timeout`` seconds after the call began, and may be at most ``max_bytes`` long."""
    deadline = time.monotonic() + timeout
    headers = request_id_headers(request_id)
    if body is not None:
        headers["Content-Type"] = "application/json"
    with call_deadline(deadline):
        try:
            response = http_session().request(
                method,
                url,
                data=body,
                headers=headers,
                timeout=(min(_CONNECT_TIMEOUT, timeout), timeout),
                stream=True,
                allow_redirects=False,
            )
        except requests.Timeout:
            raise NodeTimeout(node, "timeout", f"no answer within {timeout:g} s") from None
        except requests.RequestException as exc:
            raise NodeUnavailable(node, "refused", f"connection failed ({type(exc).__name__})") from None
        with response:
            if 300 <= response.status_code < 400:
                raise NodeUnavailable(node, "redirect", f"answered a redirect (HTTP {response.status_code})")
            if response.status_code != 200:
                raise NodeUnavailable(node, "http_status", f"answered HTTP {response.status_code}")
            return _read(response, node=node, timeout=timeout, max_bytes=max_bytes)


def _read(response: requests.Response, *, node: str, timeout: float, max_bytes: int) -> bytes:
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        # Asked for identity (nodes.transport): an inflated body could be any size.
        raise NodeUnavailable(node, "bad_response", f"answered a body in Content-Encoding {encoding[:32]!r}")
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise NodeUnavailable(node, "too_large", f"answer of {declared[:20]} bytes is over {max_bytes}")
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := response.raw.read1(_READ_CHUNK, decode_content=False):
            size += len(chunk)
            if size > max_bytes:
                raise NodeUnavailable(node, "too_large", f"answer is over {max_bytes} bytes")
            chunks.append(chunk)
    except (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError):
        raise NodeTimeout(node, "timeout", f"answer did not complete within {timeout:g} s") from None
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise NodeUnavailable(node, "refused", f"connection broke ({type(exc).__name__})") from None
    return b"".join(chunks)


def parse_json(raw: bytes, *, node: str) -> Any:
    """The JSON value of a node's answer, or :class:`~nodes.errors.NodeUnavailable`."""
    try:
        # Strict UTF-8 first: json.loads would take UTF-16 and UTF-32 bytes as well.
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NodeUnavailable(node, "not_utf8", "answer is not UTF-8") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise NodeUnavailable(node, "too_deep", "answer is JSON nested too deep to parse") from None
    except ValueError:
        raise NodeUnavailable(node, "not_json", "answer is not JSON") from None
