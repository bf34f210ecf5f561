"""What one operator can make the console write is bounded: chat creation has a quota,
replays and rate-limit blocks are audited within a budget, and agent names cannot climb the
node's URL path."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client

from audit.models import AuditEvent
from audit.services import REPEATS_RECORDED_PER_MINUTE
from chats.models import Chat, Message
from nodes.infer import NodeUnavailable, infer
from sofiia.lib.env import RatePolicy
from tests.test_metrics import sample

pytestmark = pytest.mark.usefixtures("send_backend")


def test_the_61st_chat_in_an_hour_is_refused_with_its_wait(alice, client):
    for index in range(60):
        assert alice.new_chat(title=f"chat {index}")["title"] == f"chat {index}"
    refused = alice.api.post("/api/chats", {"title": "one more", "agent": "echo"}, format="json")
    assert refused.status_code == 429
    body = refused.json()
    assert (body["error"], body["scope"]) == ("rate_limited", "chat_create")
    assert 0 < body["retry_after"] <= 3600
    assert int(refused["Retry-After"]) == body["retry_after"]
    assert Chat.objects.filter(owner=alice.user).count() == 60
    block = AuditEvent.objects.get(action="ratelimit.block")
    assert (block.actor, block.target_type, block.details["scope"]) == ("alice", "operator", "chat_create")


def test_the_console_form_is_held_to_the_same_quota(alice, settings):
    settings.SOFIIA_RATE_LIMIT_CHAT_CREATE = RatePolicy(limit=1, window=3600)
    browser = Client()
    assert browser.login(username="alice", password=alice.password)
    form = {"title": "first", "agent": "echo", "node": "NODA1"}
    assert browser.post("/console/", form).status_code == 302
    page = browser.post("/console/", {**form, "title": "second"})
    assert page.status_code == 200
    assert "Too many new chats" in page.content.decode()
    assert list(Chat.objects.values_list("title", flat=True)) == ["first"]


def test_300_replays_write_at_most_the_budgeted_audit_rows(alice, client, nodes):
    chat = alice.new_chat()
    key = uuid.uuid4().hex
    assert alice.send(chat["id"], "once", key=key).status_code == 201
    before = sample(client.get("/metrics").content.decode(), "sofiia_audit_unrecorded_total", action="message.replay")
    for _ in range(300):
        assert alice.send(chat["id"], "once", key=key)["Idempotent-Replayed"] == "true"
    assert AuditEvent.objects.filter(action="message.replay").count() == REPEATS_RECORDED_PER_MINUTE
    after = sample(client.get("/metrics").content.decode(), "sofiia_audit_unrecorded_total", action="message.replay")
    assert after - before == 300 - REPEATS_RECORDED_PER_MINUTE
    assert len(nodes["NODA1"].calls_with("once")) == 1
    assert Message.objects.count() == 2


def test_rate_limit_blocks_are_audited_within_the_budget(alice, settings):
    settings.SOFIIA_RATE_LIMIT_CHAT = RatePolicy(limit=1, window=3600)
    chat = alice.new_chat()
    alice.send(chat["id"], "allowed", key=uuid.uuid4().hex)
    for _ in range(REPEATS_RECORDED_PER_MINUTE + 15):
        assert alice.send(chat["id"], "blocked", key=uuid.uuid4().hex).status_code == 429
    assert AuditEvent.objects.filter(action="ratelimit.block").count() == REPEATS_RECORDED_PER_MINUTE


@pytest.mark.parametrize("agent", [".", ".."])
def test_an_agent_named_like_a_dot_segment_is_refused(alice, agent):
    response = alice.api.post("/api/chats", {"title": "climb", "agent": agent}, format="json")
    assert response.status_code == 400
    assert response.json()["fields"]["agent"]
    assert not Chat.objects.exists()


def test_an_existing_dot_segment_agent_is_never_sent_to_the_node(alice, nodes):
    with pytest.raises(NodeUnavailable) as refused:
        infer(node="NODA1", agent="..", body={"prompt": "where am I"})
    assert refused.value.kind == "bad_agent"
    assert nodes["NODA1"].calls == []
