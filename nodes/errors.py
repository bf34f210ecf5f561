"""How a call to a router node fails.

A node is an untrusted upstream: whatever it does wrong becomes one :class:`NodeError`. Each
error has a contract ``code`` (``node_unavailable`` → 502, ``node_timeout`` → 504,
``node_busy`` → 503), a ``kind`` that says precisely what went wrong (logs, the audit
event's ``reason``, the ``outcome`` label of ``sofiia_infer_requests_total``) and a
``failure``: the short code a failed operator message keeps in its ``failure`` field, which
the console explains to the operator. Both come from closed sets:

- ``node_unknown`` (kind ``unknown_node``): not called, the node is not in ``SOFIIA_NODES``.
- ``node_bad_agent`` (``bad_agent``): not called, the agent name is not a URL path segment.
- ``node_busy`` (``busy``): not called, it already has ``SOFIIA_NODE_MAX_INFLIGHT`` sends.
- ``node_refused`` (``refused``): refused the connection, broke it, or did not speak HTTP.
- ``node_timeout`` (``timeout``): did not answer in full within the call's total deadline.
- ``node_http_error`` (``http_status``): answered a status other than 200 and not a redirect.
- ``node_redirect`` (``redirect``): answered a 3xx, which is never followed (the call, the
  operator's prompt with it, would go to a host nobody configured).
- ``node_too_large`` (``too_large``): answered more bytes than the call's cap.
- ``node_bad_response``: answered a body that is not UTF-8 (``not_utf8``), not JSON
  (``not_json``), nested too deep to parse (``too_deep``), not the protocol's shape
  (``bad_response``), with text a database cannot store — NUL, lone surrogates
  (``unstorable_text``) — or with a field out of its bounds (``out_of_range``: ``model`` or
  ``backend`` over 200 characters, ``tokens_used`` not an integer from 0 to 10⁹).
"""

from __future__ import annotations

FAILURE_OF_KIND: dict[str, str] = {
    "unknown_node": "node_unknown",
    "bad_agent": "node_bad_agent",
    "refused": "node_refused",
    "timeout": "node_timeout",
    "http_status": "node_http_error",
    "redirect": "node_redirect",
    "too_large": "node_too_large",
    "not_utf8": "node_bad_response",
    "not_json": "node_bad_response",
    "too_deep": "node_bad_response",
    "bad_response": "node_bad_response",
    "unstorable_text": "node_bad_response",
    "out_of_range": "node_bad_response",
    "busy": "node_busy",
}
NODE_FAILURES = frozenset(FAILURE_OF_KIND.values())
NODE_ERROR_KINDS = frozenset(FAILURE_OF_KIND)


class NodeError(Exception):
    code = "node_unavailable"

    def __init__(self, node: str, kind: str, detail: str) -> None:
        if kind not in FAILURE_OF_KIND:
            # The kinds are metric labels and the failures stored codes: both stay a closed set.
            raise ValueError(f"unknown node error kind {kind!r}")
        super().__init__(f"{node}: {detail}")
        self.node = node
        self.kind = kind
        self.failure = FAILURE_OF_KIND[kind]
        self.detail = detail


class NodeUnavailable(NodeError):
    code = "node_unavailable"


class NodeTimeout(NodeError):
    code = "node_timeout"


class NodeBusy(NodeError):
    """The node already has ``SOFIIA_NODE_MAX_INFLIGHT`` sends in flight; it was not called."""

    code = "node_busy"
