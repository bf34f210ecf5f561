"""Idempotency-Key semantics of the send endpoint, on each backend (test client, real caches)."""

from __future__ import annotations

import uuid

import pytest
from django.core.cache import caches
from django.utils import timezone

from audit.models import AuditEvent
from chats.idempotency import cache_key, delivery_lease_seconds, idempotency_claim
from chats.models import Message
from nodes.infer import NodeUnavailable
from tests.caches import clear_caches
from tests.test_metrics import sample

pytestmark = pytest.mark.usefixtures("send_backend")


def key() -> str:
    return uuid.uuid4().hex


def metric(client, result: str) -> float:
    return sample(client.get("/metrics").content.decode(), "sofiia_idempotency_requests_total", result=result)


def test_a_replay_returns_the_stored_response_and_does_nothing_else(alice, nodes, client):
    chat = alice.new_chat()
    idempotency_key = key()
    replays_before = metric(client, "replay")
    first = alice.send(chat["id"], "exactly once", key=idempotency_key)
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first
    second = alice.send(chat["id"], "exactly once", key=idempotency_key)
    assert second.status_code == 201
    assert second["Idempotent-Replayed"] == "true"
    assert second["Content-Type"] == first["Content-Type"]
    assert second.content == first.content
    assert len(nodes["NODA1"].calls_with("exactly once")) == 1
    assert Message.objects.count() == 2
    assert metric(client, "replay") == replays_before + 1
    replay = AuditEvent.objects.get(action="message.replay")
    assert (replay.actor, replay.chat_id, replay.details["source"]) == ("alice", chat["id"], "cache")
    assert replay.target_id == str(first.json()["operator_message"]["id"])


def test_the_fingerprint_ignores_key_order_and_whitespace(alice):
    chat = alice.new_chat()
    idempotency_key = key()
    path = f"/api/chats/{chat['id']}/send"
    first = alice.api.post(
        path, b'{"text": "same"}', content_type="application/json", HTTP_IDEMPOTENCY_KEY=idempotency_key
    )
    again = alice.api.post(
        path, b'{ "text":"same" }', content_type="application/json", HTTP_IDEMPOTENCY_KEY=idempotency_key
    )
    assert first.status_code == 201
    assert again["Idempotent-Replayed"] == "true"


def test_a_key_reused_with_another_body_is_a_422(alice, nodes, client):
    chat = alice.new_chat()
    idempotency_key = key()
    mismatches_before = metric(client, "mismatch")
    assert alice.send(chat["id"], "original", key=idempotency_key).status_code == 201
    response = alice.send(chat["id"], "different", key=idempotency_key)
    assert response.status_code == 422
    assert response.json()["error"] == "idempotency_key_reused"
    assert Message.objects.count() == 2
    assert nodes["NODA1"].calls_with("different") == []
    assert metric(client, "mismatch") == mismatches_before + 1


def test_keys_are_scoped_to_operator_and_chat(alice, bob, nodes):
    one, two = alice.new_chat(), alice.new_chat()
    bobs = bob.new_chat()
    shared = "the-same-key"
    for persona, chat in ((alice, one), (alice, two), (bob, bobs)):
        response = persona.send(chat["id"], "hello", key=shared)
        assert response.status_code == 201
        assert "Idempotent-Replayed" not in response
    assert len(nodes["NODA1"].calls_with("hello")) == 3


def test_a_key_still_in_flight_is_a_409_with_retry_after(alice, client):
    chat = alice.new_chat()
    idempotency_key = key()
    conflicts_before = metric(client, "conflict")
    # Another worker holds the key while its node call runs.
    held = idempotency_claim(operator_id=alice.user.pk, chat_id=chat["id"], key=idempotency_key, text="slow one")
    assert held.claimed
    response = alice.send(chat["id"], "slow one", key=idempotency_key)
    held.release()
    assert response.status_code == 409
    assert response.json()["error"] == "idempotency_key_in_flight"
    assert int(response["Retry-After"]) >= 1
    assert not Message.objects.exists()
    assert metric(client, "conflict") == conflicts_before + 1


def test_a_different_text_in_flight_is_a_422_not_a_409(alice):
    chat = alice.new_chat()
    idempotency_key = key()
    held = idempotency_claim(operator_id=alice.user.pk, chat_id=chat["id"], key=idempotency_key, text="a")
    assert held.claimed
    assert alice.send(chat["id"], "b", key=idempotency_key).status_code == 422


def test_a_retry_after_a_node_failure_redelivers_the_same_message(alice, monkeypatch, nodes):
    chat = alice.new_chat()
    idempotency_key = key()

    def refusing(*, node, **kwargs):
        raise NodeUnavailable(node, "refused", "connection refused")

    with monkeypatch.context() as patch:
        patch.setattr("chats.services.infer", refusing)
        failed = alice.send(chat["id"], "deliver me", key=idempotency_key)
    assert failed.status_code == 502
    retried = alice.send(chat["id"], "deliver me", key=idempotency_key)
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried
    assert retried.json()["operator_message"]["id"] == failed.json()["operator_message"]["id"]
    assert Message.objects.filter(role="operator").count() == 1
    assert len(nodes["NODA1"].calls_with("deliver me")) == 1
    assert alice.send(chat["id"], "deliver me", key=idempotency_key)["Idempotent-Replayed"] == "true"


def test_server_errors_are_not_stored_for_replay(alice, nodes):
    chat = alice.new_chat(agent="fail500")
    idempotency_key = key()
    for _ in range(2):
        response = alice.send(chat["id"], "keeps failing", key=idempotency_key)
        assert response.status_code == 502
        assert "Idempotent-Replayed" not in response
    assert len(nodes["NODA1"].calls_with("keeps failing")) == 2
    assert Message.objects.get().attempts == 2


def test_a_rate_limited_answer_is_not_stored_for_replay(alice, settings, nodes):
    from sofiia.lib.env import RatePolicy

    settings.SOFIIA_RATE_LIMIT_CHAT = RatePolicy(limit=1, window=3600)
    chat = alice.new_chat()
    assert alice.send(chat["id"], "first", key=key()).status_code == 201
    idempotency_key = key()
    blocked = alice.send(chat["id"], "second", key=idempotency_key)
    assert blocked.status_code == 429
    settings.SOFIIA_RATE_LIMIT_CHAT = RatePolicy(limit=10, window=3600)
    retried = alice.send(chat["id"], "second", key=idempotency_key)
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried
    assert len(nodes["NODA1"].calls_with("second")) == 1


def test_bad_input_releases_the_key(alice):
    chat = alice.new_chat()
    idempotency_key = key()
    path = f"/api/chats/{chat['id']}/send"
    bad = alice.api.post(path, {"text": ""}, format="json", HTTP_IDEMPOTENCY_KEY=idempotency_key)
    assert bad.status_code == 400
    good = alice.api.post(path, {"text": ""}, format="json", HTTP_IDEMPOTENCY_KEY=idempotency_key)
    assert good.status_code == 400
    assert good.json()["error"] == "invalid_input"


def test_the_cache_keeps_two_message_ids_for_the_ttl_never_the_body(alice, settings, send_backend):
    chat = alice.new_chat()
    idempotency_key = key()
    first = alice.send(chat["id"], "x" * 16000, key=idempotency_key).json()
    scope_key = cache_key(operator_id=alice.user.pk, chat_id=chat["id"], key=idempotency_key)
    record = caches["idempotency"].get(scope_key)
    assert record.pop("fingerprint")
    assert record == {
        "state": "done",
        "operator_message_id": first["operator_message"]["id"],
        "reply_id": first["reply"]["id"],
    }
    if send_backend == "redis":
        assert 0 < caches["idempotency"].ttl(scope_key) <= settings.SOFIIA_IDEMPOTENCY_TTL


def test_a_replay_after_the_ttl_comes_from_the_database(alice, nodes, client):
    chat = alice.new_chat()
    idempotency_key = key()
    first = alice.send(chat["id"], "remember me", key=idempotency_key)
    scope_key = cache_key(operator_id=alice.user.pk, chat_id=chat["id"], key=idempotency_key)
    assert caches["idempotency"].get(scope_key)["state"] == "done"
    caches["idempotency"].delete(scope_key)  # what the TTL does
    again = alice.send(chat["id"], "remember me", key=idempotency_key)
    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert len(nodes["NODA1"].calls_with("remember me")) == 1
    assert Message.objects.count() == 2
    sources = sorted(AuditEvent.objects.filter(action="message.replay").values_list("details__source", flat=True))
    assert sources == ["database"]
    # The key stays bound to its message: another body is still refused.
    assert alice.send(chat["id"], "something else", key=idempotency_key).status_code == 422


def test_a_claim_left_by_a_crashed_worker_expires(alice, nodes, clock):
    chat = alice.new_chat()
    idempotency_key = key()
    # The crashed worker claimed the key and stored the pending message, then died.
    crashed = idempotency_claim(operator_id=alice.user.pk, chat_id=chat["id"], key=idempotency_key, text="orphaned")
    assert crashed.claimed
    Message.objects.create(
        chat_id=chat["id"], role="operator", text="orphaned", node="NODA1", status="pending",
        operator=alice.user, idempotency_key=idempotency_key, attempts=1, delivery_started_at=timezone.now(),
    )  # fmt: skip
    assert alice.send(chat["id"], "orphaned", key=idempotency_key).status_code == 409
    clock(delivery_lease_seconds() - 1)
    assert alice.send(chat["id"], "orphaned", key=idempotency_key).status_code == 409
    clock(2)
    recovered = alice.send(chat["id"], "orphaned", key=idempotency_key)
    assert recovered.status_code == 201, recovered.content
    assert Message.objects.filter(role="operator").get().attempts == 2
    assert len(nodes["NODA1"].calls_with("orphaned")) == 1


def test_requests_without_an_operator_are_refused_before_anything(anonymous):
    response = anonymous.post("/api/chats/1/send", {"text": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code == 401


def test_a_flushed_cache_still_never_duplicates(alice, nodes):
    chat = alice.new_chat()
    idempotency_key = key()
    first = alice.send(chat["id"], "flush me", key=idempotency_key)
    clear_caches()
    again = alice.send(chat["id"], "flush me", key=idempotency_key)
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Message.objects.count() == 2
    assert len(nodes["NODA1"].calls_with("flush me")) == 1
