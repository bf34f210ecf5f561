from __future__ import annotations

import uuid

from prometheus_client.parser import text_string_to_metric_families


def sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


def test_metrics_are_exposed_in_prometheus_text_format(db, client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert "# TYPE django_http_requests_before_middlewares_total counter" in response.content.decode()


def test_sends_are_counted_by_node_and_outcome(alice, client):
    before = client.get("/metrics").content.decode()
    chat = alice.new_chat(node="NODA2")
    failing = alice.new_chat(node="NODA2", agent="fail500")
    alice.send(chat["id"], "one", key=uuid.uuid4().hex)
    alice.send(chat["id"], "two", key=uuid.uuid4().hex)
    alice.send(failing["id"], "three", key=uuid.uuid4().hex)
    after = client.get("/metrics").content.decode()
    ok = "sofiia_infer_requests_total"
    assert sample(after, ok, node="NODA2", outcome="ok") - sample(before, ok, node="NODA2", outcome="ok") == 2
    assert (
        sample(after, ok, node="NODA2", outcome="http_status") - sample(before, ok, node="NODA2", outcome="http_status")
        == 1
    )
    count = "sofiia_infer_duration_seconds_count"
    assert sample(after, count, node="NODA2") - sample(before, count, node="NODA2") == 3
    audit = "sofiia_audit_events_total"
    assert sample(after, audit, action="message.send") - sample(before, audit, action="message.send") == 3
