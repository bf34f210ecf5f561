"""The metric names the console exposes, and a reader of the metric names a PromQL
expression uses, for checking alert rules and dashboards against them."""

from __future__ import annotations

import re

# Counters are exposed with ``_total``; a histogram is its three series.
HISTOGRAMS = ("sofiia_infer_duration_seconds", "sofiia_send_duration_seconds")
KNOWN_METRICS = frozenset(
    {
        "sofiia_idempotency_requests_total",
        "sofiia_idempotency_backend_errors_total",
        "sofiia_ratelimit_requests_total",
        "sofiia_ratelimit_backend_errors_total",
        "sofiia_infer_requests_total",
        "sofiia_audit_events_total",
        "sofiia_audit_write_failures_total",
        "sofiia_audit_unrecorded_total",
        "sofiia_login_failures_total",
        "sofiia_node_in_flight",
        "sofiia_node_busy_total",
        "sofiia_node_tokens_total",
        "django_http_responses_total_by_status_total",
        "django_http_requests_total_by_method_total",
        "django_http_requests_latency_seconds_by_view_method_bucket",
        *(f"{name}_{suffix}" for name in HISTOGRAMS for suffix in ("bucket", "sum", "count")),
    }
)
# Prometheus writes ``up`` itself for every scrape target.
SCRAPE_METRICS = frozenset({"up"})

_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or", "unless"}
    | {"inf", "nan", "atan2"}
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_TOKEN = re.compile(r"(?P<number>\d[\w.]*)|(?P<variable>\$\{?\w+\}?)|(?P<name>[A-Za-z_:][\w:]*)(?P<call>\s*\()?")


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects (functions, keywords, labels and Grafana variables left out)."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = _LABEL_LIST.sub(" ", text)
    names = set()
    for match in _TOKEN.finditer(text):
        name = match.group("name")
        if name and not match.group("call") and name not in _KEYWORDS:
            names.add(name)
    return names
