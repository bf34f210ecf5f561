from __future__ import annotations

from prometheus_client import Counter

LOGIN_FAILURES = Counter(
    "sofiia_login_failures",
    "Refused console and admin logins, by surface and reason (credentials, throttled, not_allowed).",
    ["surface", "reason"],
)
