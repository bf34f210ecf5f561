from __future__ import annotations

from prometheus_client import Counter

AUDIT_EVENTS = Counter("sofiia_audit_events", "Audit events written, by action.", ["action"])
AUDIT_WRITE_FAILURES = Counter(
    "sofiia_audit_write_failures",
    "Audit events that could not be written (their actions were refused), by action.",
    ["action"],
)
AUDIT_UNRECORDED = Counter(
    "sofiia_audit_unrecorded",
    "Repeated events beyond their per-minute budget (refused reads and logins, replays, blocks), "
    "counted instead of recorded one by one, by action.",
    ["action"],
)
