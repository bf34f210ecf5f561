from __future__ import annotations

from prometheus_client import Counter

RATELIMIT_REQUESTS = Counter(
    "sofiia_ratelimit_requests",
    "Send rate-limit decisions: an allowed send counts in each scope, a blocked one in the scope that blocked it.",
    ["scope", "decision"],
)
