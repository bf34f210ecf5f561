"""A node with SOFIIA_NODE_MAX_INFLIGHT sends in flight is not called: the send is answered
503 node_busy at once, its message kept as failed for a retry with the same key."""

from __future__ import annotations

import uuid
from contextlib import ExitStack

from audit.models import AuditEvent
from chats.models import Message
from nodes.bulkhead import node_bulkhead
from tests.test_metrics import sample


def test_a_send_to_a_node_with_every_slot_taken_is_refused_and_kept_for_a_retry(alice, nodes, settings, client):
    settings.SOFIIA_NODE_MAX_INFLIGHT = 2
    busy, calm = alice.new_chat(node="NODA1"), alice.new_chat(node="NODA2")
    key = uuid.uuid4().hex
    before = client.get("/metrics").content.decode()
    with ExitStack() as held:
        for _ in range(2):
            held.enter_context(node_bulkhead().slot("NODA1"))
        response = alice.send(busy["id"], "are you there?", key=key)
        assert response.status_code == 503, response.content
        assert response["Retry-After"] == "2"
        body = response.json()
        assert body["error"] == "node_busy"
        assert body["operator_message"]["status"] == "failed"
        assert nodes["NODA1"].calls == []
        # The other node is untouched by the full one.
        assert alice.send(calm["id"], "and you?", key=uuid.uuid4().hex).status_code == 201
    after = client.get("/metrics").content.decode()
    assert (
        sample(after, "sofiia_node_busy_total", node="NODA1") - sample(before, "sofiia_node_busy_total", node="NODA1")
        == 1
    )
    message = Message.objects.get(pk=body["operator_message"]["id"])
    assert (message.status, message.failure, message.attempts) == ("failed", "node_busy", 1)
    event = AuditEvent.objects.get(action="message.send", target_id=str(message.pk))
    assert (event.outcome, event.details["error"], event.details["reason"]) == ("failed", "node_busy", "busy")

    retry = alice.send(busy["id"], "are you there?", key=key)
    assert retry.status_code == 201, retry.content
    assert retry.json()["operator_message"]["id"] == message.pk
    assert Message.objects.filter(chat_id=busy["id"], role="operator").count() == 1
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("delivered", 2)
    assert len(nodes["NODA1"].calls_with("are you there?")) == 1


def test_the_nodes_api_shows_the_sends_in_flight(alice, settings):
    settings.SOFIIA_NODE_MAX_INFLIGHT = 5
    with node_bulkhead().slot("NODA2"), node_bulkhead().slot("NODA2"):
        nodes = {n["name"]: n for n in alice.api.get("/api/nodes").json()}
    assert (nodes["NODA1"]["in_flight"], nodes["NODA1"]["max_in_flight"]) == (0, 5)
    assert (nodes["NODA2"]["in_flight"], nodes["NODA2"]["max_in_flight"]) == (2, 5)
