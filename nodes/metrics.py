"""Prometheus metrics of the calls to router nodes. Multiprocess-safe under gunicorn.

No label takes a value from outside as it is: ``node`` is a configured node's name (calls to
any other are ``(unknown)``, see ``nodes.registry.node_label``), ``outcome`` is ``ok`` or a
kind of ``nodes.errors.NodeError``, and ``model`` is one of the models the node lists at
``/v1/models`` (at most ``MAX_NODE_MODELS`` of them per node and process) or ``other``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

INFER_REQUESTS = Counter(
    "sofiia_infer_requests",
    "Infer calls to router nodes, by node and outcome.",
    ["node", "outcome"],
)
INFER_DURATION = Histogram(
    "sofiia_infer_duration_seconds",
    "Duration of infer calls to router nodes.",
    ["node"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60),
)
NODE_TOKENS = Counter(
    "sofiia_node_tokens",
    "Tokens the nodes say their answers used, by node and model (one the node lists, else other).",
    ["node", "model"],
)
NODE_IN_FLIGHT = Gauge(
    "sofiia_node_in_flight",
    "Sends waiting on a router node's answer, by node (all live workers together).",
    ["node"],
    multiprocess_mode="livesum",
)
NODE_BUSY = Counter(
    "sofiia_node_busy",
    "Sends refused with node_busy because the node had SOFIIA_NODE_MAX_INFLIGHT sends in flight.",
    ["node"],
)
