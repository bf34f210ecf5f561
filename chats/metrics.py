"""Prometheus metrics of the send path. Multiprocess-safe under gunicorn (see gunicorn.conf.py)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

SEND_DURATION = Histogram(
    "sofiia_send_duration_seconds",
    "Duration of the send service, node call included, by outcome.",
    ["outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60),
)
IDEMPOTENCY_REQUESTS = Counter(
    "sofiia_idempotency_requests",
    "Keyed send requests by idempotency result: miss (ran the view), replay, conflict (409), mismatch (422).",
    ["result"],
)
IDEMPOTENCY_BACKEND_ERRORS = Counter(
    "sofiia_idempotency_backend_errors",
    "Failed operations on the idempotency cache (the database guard still holds).",
)
