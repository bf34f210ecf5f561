"""Rate limits on POST /api/chats/{id}/send through the real middleware (test client)."""

from __future__ import annotations

import logging
import re
import uuid

import pytest

from audit.models import AuditEvent
from chats.models import Message
from sofiia.lib.env import RatePolicy
from tests.test_metrics import sample

pytestmark = pytest.mark.usefixtures("send_backend")


def key() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def limits(settings):
    def set_limits(chat: str, operator: str) -> None:
        settings.SOFIIA_RATE_LIMIT_CHAT = RatePolicy(*map(int, chat.split("/")))
        settings.SOFIIA_RATE_LIMIT_OPERATOR = RatePolicy(*map(int, operator.split("/")))

    return set_limits


def parse_ratelimit(header: str) -> dict[str, dict[str, int]]:
    items = {}
    for item in header.split(", "):
        name, *params = item.split(";")
        items[name.strip('"')] = {k: int(v) for k, v in (p.split("=") for p in params)}
    return items


def test_every_send_answer_carries_the_policy_and_the_quota(alice, limits):
    limits("3/60", "10/60")
    chat = alice.new_chat()
    response = alice.send(chat["id"], "one", key=key())
    assert response["RateLimit-Policy"] == '"chat";q=3;w=60, "operator";q=10;w=60'
    quota = parse_ratelimit(response["RateLimit"])
    assert quota["chat"]["r"] == 2
    assert quota["operator"]["r"] == 9
    assert 59 <= quota["chat"]["t"] <= 60
    assert re.fullmatch(r'"chat";r=\d+;t=\d+, "operator";r=\d+;t=\d+', response["RateLimit"])


def test_the_chat_limit_answers_429_with_retry_after(alice, limits, nodes):
    limits("3/60", "100/60")
    chat = alice.new_chat()
    for i in range(3):
        assert alice.send(chat["id"], f"m{i}", key=key()).status_code == 201
    blocked = alice.send(chat["id"], "one too many", key=key())
    assert blocked.status_code == 429
    body = blocked.json()
    assert body["error"] == "rate_limited"
    assert body["scope"] == "chat"
    assert 59 <= body["retry_after"] <= 60
    assert blocked["Retry-After"] == str(body["retry_after"])
    assert parse_ratelimit(blocked["RateLimit"])["chat"]["r"] == 0
    assert blocked["RateLimit-Policy"]
    assert nodes["NODA1"].calls_with("one too many") == []
    assert not Message.objects.filter(text="one too many").exists()
    event = AuditEvent.objects.get(action="ratelimit.block")
    assert (event.actor, event.chat_id, event.outcome) == ("alice", chat["id"], "blocked")
    assert event.details == {"scope": "chat", "limit": 3, "window": 60, "retry_after": body["retry_after"]}


def test_the_operator_limit_spans_chats(alice, limits):
    limits("10/60", "5/60")
    outcomes = []
    for _ in range(3):
        chat = alice.new_chat()
        for _ in range(2):
            response = alice.send(chat["id"], "o", key=key())
            outcomes.append(response.json().get("scope") if response.status_code == 429 else response.status_code)
    assert outcomes == [201, 201, 201, 201, 201, "operator"]


def test_the_quota_comes_back_when_the_window_slides(alice, limits, clock):
    limits("1/60", "100/60")
    chat = alice.new_chat()
    assert alice.send(chat["id"], "a", key=key()).status_code == 201
    assert alice.send(chat["id"], "b", key=key()).status_code == 429
    clock(59)
    assert alice.send(chat["id"], "b", key=key()).status_code == 429
    clock(1.1)
    assert alice.send(chat["id"], "c", key=key()).status_code == 201


def test_a_replay_is_not_rate_limited_and_spends_nothing(alice, limits):
    limits("2/60", "100/60")
    chat = alice.new_chat()
    keys = [key(), key()]
    for k in keys:
        assert alice.send(chat["id"], k, key=k).status_code == 201
    for k in keys:
        replay = alice.send(chat["id"], k, key=k)
        assert replay.status_code == 201
        assert replay["Idempotent-Replayed"] == "true"
        assert parse_ratelimit(replay["RateLimit"])["chat"]["r"] == 0
    assert not AuditEvent.objects.filter(action="ratelimit.block").exists()


def test_another_operator_cannot_spend_my_chats_quota(alice, bob, limits):
    limits("2/60", "100/60")
    chat = alice.new_chat()
    for _ in range(5):
        assert bob.send(chat["id"], "intrusion", key=key()).status_code in (404, 429)
    assert alice.send(chat["id"], "mine", key=key()).status_code == 201
    assert alice.send(chat["id"], "mine too", key=key()).status_code == 201


def test_metrics_count_a_known_sequence(alice, limits, client):
    limits("2/60", "3/60")
    before = client.get("/metrics").content.decode()
    one, two = alice.new_chat(), alice.new_chat()
    statuses = [alice.send(c["id"], "x", key=key()).status_code for c in (one, one, one, two, two)]
    assert statuses == [201, 201, 429, 201, 429]  # chat scope, then operator scope
    after = client.get("/metrics").content.decode()

    def delta(scope: str, decision: str) -> float:
        name = "sofiia_ratelimit_requests_total"
        return sample(after, name, scope=scope, decision=decision) - sample(
            before, name, scope=scope, decision=decision
        )

    assert delta("chat", "allowed") == 3
    assert delta("operator", "allowed") == 3
    assert delta("chat", "blocked") == 1
    assert delta("operator", "blocked") == 1
    scopes = list(
        AuditEvent.objects.filter(action="ratelimit.block").order_by("id").values_list("details__scope", flat=True)
    )
    assert scopes == ["chat", "operator"]


def test_a_block_is_logged(alice, limits, caplog):
    limits("1/60", "100/60")
    chat = alice.new_chat()
    alice.send(chat["id"], "a", key=key())
    with caplog.at_level(logging.WARNING, logger="ratelimit.services"):
        alice.send(chat["id"], "b", key=key())
    record = next(r for r in caplog.records if r.getMessage() == "ratelimit.block")
    assert (record.operator, record.chat_id, record.scope) == ("alice", chat["id"], "chat")


def test_the_console_send_is_limited_too(alice, limits):
    from django.test import Client

    limits("1/60", "100/60")
    chat = alice.new_chat()
    console = Client()
    console.login(username="alice", password=alice.password)
    console.post(f"/console/chats/{chat['id']}/send", {"text": "a", "idempotency_key": "c1"})
    page = console.post(f"/console/chats/{chat['id']}/send", {"text": "b", "idempotency_key": "c2"}, follow=True)
    assert "Too many sends" in page.content.decode()
    assert list(Message.objects.filter(role="operator").values_list("text", flat=True)) == ["a"]
