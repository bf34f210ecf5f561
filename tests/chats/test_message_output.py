"""Every message body accounts for its reply: model, backend, tokens_used, latency_ms, failure
and attempts."""

from __future__ import annotations

import uuid

from chats.models import Chat, Message
from tests.chats.conversation_helpers import at, exchange, operator_message

METADATA = ("model", "backend", "tokens_used", "latency_ms", "failure", "attempts")


def listed(persona, chat):
    return {m["id"]: m for m in persona.api.get(f"/api/chats/{chat.pk}/messages").json()["items"]}


def test_a_reply_carries_what_the_node_said_and_its_operator_message_nulls(alice):
    chat = Chat.objects.create(owner=alice.user, title="t", agent="echo", node="NODA1")
    question, reply = exchange(chat, "q", "a", ts=at(0))
    items = listed(alice, chat)
    assert {k: items[reply.pk][k] for k in METADATA} == {
        "model": "m-1", "backend": "vllm", "tokens_used": 7, "latency_ms": 12, "failure": "", "attempts": 0,
    }  # fmt: skip
    assert {k: items[question.pk][k] for k in METADATA} == {
        "model": None, "backend": None, "tokens_used": None, "latency_ms": None, "failure": "", "attempts": 1,
    }  # fmt: skip


def test_a_failed_message_says_why_and_a_redelivered_one_does_not(alice):
    chat = Chat.objects.create(owner=alice.user, title="t", agent="echo", node="NODA1")
    failed = operator_message(chat, "lost", ts=at(0), status=Message.Status.FAILED)
    # A failure code left on a message that is not failed (a stale value) is not shown.
    stale = operator_message(chat, "pending", ts=at(1), status=Message.Status.PENDING)
    Message.objects.filter(pk=stale.pk).update(failure="node_timeout")
    items = listed(alice, chat)
    assert items[failed.pk]["failure"] == "node_unavailable"
    assert items[stale.pk]["failure"] == ""


def test_a_failed_send_answers_with_the_failure_and_the_attempts(alice):
    chat = alice.new_chat(agent="fail500")
    key = uuid.uuid4().hex
    for attempt in (1, 2):
        response = alice.send(chat["id"], "hello", key=key)
        assert response.status_code == 502
        message = response.json()["operator_message"]
        assert (message["status"], message["failure"], message["attempts"]) == ("failed", "node_http_error", attempt)
        assert message["model"] is None
