from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from chats.models import Message
from nodes.infer import InferResult, NodeTimeout
from tests.live import free_port


def key() -> str:
    return uuid.uuid4().hex


@pytest.mark.parametrize(("node", "other"), [("NODA1", "NODA2"), ("NODA2", "NODA1")])
def test_a_send_is_relayed_to_the_chats_node_over_http(alice, nodes, node, other):
    chat = alice.new_chat(agent="planner", node=node)
    response = alice.send(chat["id"], "status of the rollout?", key=key())
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["operator_message"]["text"] == "status of the rollout?"
    assert body["operator_message"]["status"] == "delivered"
    assert body["operator_message"]["role"] == "operator"
    # The reply's metadata (model, backend, tokens_used, latency_ms) is checked in
    # tests/chats/test_message_output.py.
    assert {name: body["reply"][name] for name in ("id", "chat_id", "role", "text", "ts", "node", "status")} == {
        "id": body["reply"]["id"],
        "chat_id": chat["id"],
        "role": "agent",
        "text": f"{node}/planner: status of the rollout?",
        "ts": body["reply"]["ts"],
        "node": node,
        "status": "delivered",
    }
    calls = nodes[node].calls_with("status of the rollout?")
    assert len(calls) == 1
    assert calls[0].agent == "planner"
    assert calls[0].body == {
        "prompt": "status of the rollout?",
        "model": None,
        "max_tokens": None,
        "temperature": None,
        "system_prompt": None,
        "messages": [{"role": "user", "content": "status of the rollout?"}],
    }
    assert nodes[other].calls == []
    event = AuditEvent.objects.get(action="message.send")
    assert (event.actor, event.outcome, event.chat_id) == ("alice", "delivered", chat["id"])
    assert event.target_id == str(body["operator_message"]["id"])
    assert event.details["node"] == node


def test_routing_through_a_monkeypatched_infer_function(alice, monkeypatch, nodes):
    seen = []

    def fake_infer(*, node, agent, body, **kwargs):
        seen.append((node, agent, body["prompt"]))
        return InferResult(response=f"patched {node}", model="m", tokens_used=None, backend="b")

    monkeypatch.setattr("chats.services.infer", fake_infer)
    one = alice.new_chat(agent="a1", node="NODA1")
    two = alice.new_chat(agent="a2", node="NODA2")
    assert alice.send(one["id"], "p1", key=key()).json()["reply"]["text"] == "patched NODA1"
    assert alice.send(two["id"], "p2", key=key()).json()["reply"]["text"] == "patched NODA2"
    assert seen == [("NODA1", "a1", "p1"), ("NODA2", "a2", "p2")]
    assert nodes["NODA1"].calls == []
    assert nodes["NODA2"].calls == []


def test_messages_are_listed_newest_first_with_both_sides(alice):
    chat = alice.new_chat()
    first = alice.send(chat["id"], "one", key=key()).json()
    second = alice.send(chat["id"], "two", key=key()).json()
    items = alice.api.get(f"/api/chats/{chat['id']}/messages").json()["items"]
    assert [m["id"] for m in items] == [
        second["reply"]["id"],
        second["operator_message"]["id"],
        first["reply"]["id"],
        first["operator_message"]["id"],
    ]
    assert set(items[0]) == {
        "id", "chat_id", "role", "text", "ts", "node", "status",
        "model", "backend", "tokens_used", "latency_ms", "failure", "attempts",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("agent", "status", "error", "failure", "outcome"),
    [
        ("fail500", 502, "node_unavailable", "node_http_error", "failed"),
        ("garbage", 502, "node_unavailable", "node_bad_response", "failed"),
        ("badjson", 502, "node_unavailable", "node_bad_response", "failed"),
        ("slow3", 504, "node_timeout", "node_timeout", "timeout"),
    ],
)
def test_a_node_failure_keeps_the_operator_message_as_failed(alice, settings, agent, status, error, failure, outcome):
    settings.SOFIIA_INFER_TIMEOUT = 0.5
    chat = alice.new_chat(agent=agent)
    response = alice.send(chat["id"], "will it work?", key=key())
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"] == error
    assert body["operator_message"]["status"] == "failed"
    message = Message.objects.get()
    assert (message.role, message.status, message.failure, message.text) == (
        "operator", "failed", failure, "will it work?",
    )  # fmt: skip
    event = AuditEvent.objects.get(action="message.send")
    assert event.outcome == outcome
    assert event.details["error"] == error


def test_a_refused_connection_is_a_502(alice, settings):
    settings.SOFIIA_NODES = {**settings.SOFIIA_NODES, "NODA3": f"http://127.0.0.1:{free_port()}"}
    chat = alice.new_chat(node="NODA3")
    response = alice.send(chat["id"], "anyone there?", key=key())
    assert response.status_code == 502
    assert response.json()["error"] == "node_unavailable"
    assert AuditEvent.objects.get(action="message.send").details["reason"] == "refused"


def test_a_retry_after_a_node_failure_redelivers_the_same_message(alice, monkeypatch):
    chat = alice.new_chat()
    idempotency_key = key()

    def timing_out(*, node, **kwargs):
        raise NodeTimeout(node, "timeout", "no answer")

    with monkeypatch.context() as patch:
        patch.setattr("chats.services.infer", timing_out)
        failed = alice.send(chat["id"], "retry me", key=idempotency_key)
    assert failed.status_code == 504
    retried = alice.send(chat["id"], "retry me", key=idempotency_key)
    assert retried.status_code == 201, retried.content
    assert retried.json()["operator_message"]["id"] == failed.json()["operator_message"]["id"]
    assert retried.json()["operator_message"]["status"] == "delivered"
    operator_messages = Message.objects.filter(role="operator")
    assert operator_messages.count() == 1
    assert operator_messages.get().attempts == 2
    assert Message.objects.filter(role="agent").count() == 1
    outcomes = list(AuditEvent.objects.filter(action="message.send").order_by("id").values_list("outcome", flat=True))
    assert outcomes == ["timeout", "delivered"]


def test_the_same_key_with_another_text_is_a_422(alice):
    chat = alice.new_chat()
    idempotency_key = key()
    assert alice.send(chat["id"], "original", key=idempotency_key).status_code == 201
    response = alice.send(chat["id"], "changed", key=idempotency_key)
    assert response.status_code == 422
    assert response.json()["error"] == "idempotency_key_reused"
    assert Message.objects.count() == 2


def test_a_pending_message_within_its_lease_is_in_flight(alice):
    chat = alice.new_chat()
    Message.objects.create(
        chat_id=chat["id"], role="operator", text="busy", node="NODA1", status="pending",
        operator=alice.user, idempotency_key="k-busy", attempts=1,
        delivery_started_at=timezone.now(),
    )  # fmt: skip
    response = alice.send(chat["id"], "busy", key="k-busy")
    assert response.status_code == 409
    assert response.json()["error"] == "idempotency_key_in_flight"
    assert response["Retry-After"] == "1"


def test_a_pending_message_whose_lease_ran_out_is_taken_over(alice, nodes):
    chat = alice.new_chat()
    stale = Message.objects.create(
        chat_id=chat["id"], role="operator", text="orphan", node="NODA1", status="pending",
        operator=alice.user, idempotency_key="k-orphan", attempts=1,
        delivery_started_at=timezone.now() - timedelta(minutes=5),
    )  # fmt: skip
    response = alice.send(chat["id"], "orphan", key="k-orphan")
    assert response.status_code == 201
    assert response.json()["operator_message"]["id"] == stale.pk
    assert len(nodes["NODA1"].calls_with("orphan")) == 1


@pytest.mark.parametrize(
    ("header", "error"),
    [(None, "idempotency_key_required"), ("", "idempotency_key_required"), ("x" * 256, "idempotency_key_invalid"),
     ("caf\u00e9", "idempotency_key_invalid"), ("tab\there", "idempotency_key_invalid")],
)  # fmt: skip
def test_a_send_without_a_valid_key_is_a_400(alice, nodes, header, error):
    chat = alice.new_chat()
    extra = {} if header is None else {"HTTP_IDEMPOTENCY_KEY": header}
    response = alice.api.post(f"/api/chats/{chat['id']}/send", {"text": "x"}, format="json", **extra)
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert not Message.objects.exists()
    assert nodes["NODA1"].calls == []


@pytest.mark.parametrize(
    "body",
    [{"text": ""}, {"text": "x" * 16001}, {"text": ["list"]}, {"text": 5}, {"text": None}, {}, {"text": "a\x00b"}],
)
def test_bad_send_input_is_a_400_and_stores_nothing(alice, nodes, body):
    chat = alice.new_chat()
    response = alice.api.post(f"/api/chats/{chat['id']}/send", body, format="json", HTTP_IDEMPOTENCY_KEY=key())
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_input"
    assert "text" in response.json()["fields"]
    assert not Message.objects.exists()
    assert nodes["NODA1"].calls == []


@pytest.mark.parametrize("raw", [b'{"text": "a\\ud800b"}', b'["text"]', b'"text"', b"null"])
def test_a_lone_surrogate_or_a_body_that_is_not_an_object_is_a_400(alice, nodes, raw):
    chat = alice.new_chat()
    path = f"/api/chats/{chat['id']}/send"
    response = alice.api.post(path, raw, content_type="application/json", HTTP_IDEMPOTENCY_KEY=key())
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_input"
    assert not Message.objects.exists()
    assert nodes["NODA1"].calls == []


def test_the_longest_text_is_accepted(alice):
    chat = alice.new_chat()
    assert alice.send(chat["id"], "y" * 16000, key=key()).status_code == 201


def test_a_send_body_that_is_not_json_is_a_400(alice):
    chat = alice.new_chat()
    response = alice.api.post(
        f"/api/chats/{chat['id']}/send", b"{not json", content_type="application/json", HTTP_IDEMPOTENCY_KEY=key()
    )
    assert response.status_code == 400
    assert response.json()["error"] == "parse_error"
    assert not Message.objects.exists()


def test_nobody_sends_into_another_operators_chat(alice, bob, nodes):
    chat = alice.new_chat()
    response = bob.send(chat["id"], "intrusion", key=key())
    assert response.status_code == 404
    assert not Message.objects.exists()
    assert nodes["NODA1"].calls == []
