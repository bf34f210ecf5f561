"""Every metric the alerts and the dashboard rely on is really exposed on /metrics."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from tests.ops.promql import KNOWN_METRICS


def family_of(name: str) -> str:
    return re.sub(r"_(total|bucket|sum|count)$", "", name)


def test_every_known_metric_is_a_family_on_the_metrics_page(alice, client):
    chat = alice.new_chat()
    alice.send(chat["id"], "expose", key="k-expose")
    alice.send(chat["id"], "expose", key="k-expose")
    families = {
        family.name: family.type for family in text_string_to_metric_families(client.get("/metrics").content.decode())
    }
    missing = {name for name in KNOWN_METRICS if family_of(name) not in families}
    assert missing == set()
    assert families["sofiia_idempotency_requests"] == "counter"
    assert families["sofiia_send_duration_seconds"] == "histogram"
