"""What a node is asked, through the real send path: the dev router records every infer body
(``nodes.devrouter.InferCall``), so these tests read exactly what the agent received."""

from __future__ import annotations

import json
import uuid
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from chats.conversation import infer_body_digest
from chats.models import Message
from nodes.infer import infer_body_bytes


def key() -> str:
    return uuid.uuid4().hex


def send(persona: Any, chat_id: int, text: str, *, idempotency_key: str | None = None) -> Any:
    return persona.send(chat_id, text, key=idempotency_key or key())


def asked(nodes: Any, text: str, node: str = "NODA1") -> dict[str, Any]:
    (call,) = nodes[node].calls_with(text)
    return call.body


def change(persona: Any, chat_id: int, **fields: Any) -> None:
    response = persona.api.patch(f"/api/chats/{chat_id}", fields, format="json")
    assert response.status_code == 200, response.content


def test_the_chats_settings_reach_the_node(alice, nodes):
    chat = alice.new_chat()
    change(
        alice, chat["id"], system_prompt="You answer in haiku.", model="sofiia-large", temperature=0.3, max_tokens=64
    )
    response = send(alice, chat["id"], "hello")
    assert response.status_code == 201
    body = asked(nodes, "hello")
    assert (body["system_prompt"], body["model"], body["temperature"], body["max_tokens"]) == (
        "You answer in haiku.",
        "sofiia-large",
        0.3,
        64,
    )
    reply = response.json()["reply"]
    assert (reply["model"], reply["backend"]) == ("sofiia-large", "dev-gpu")
    assert reply["tokens_used"] > 0
    assert reply["latency_ms"] >= 0


def test_the_third_message_carries_exactly_the_two_earlier_exchanges_in_order(alice, nodes):
    chat = alice.new_chat()
    change(alice, chat["id"], context_turns=2)
    for text in ("first", "second", "third"):
        assert send(alice, chat["id"], text).status_code == 201
    assert asked(nodes, "third")["messages"] == [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "NODA1/echo: first"},
        {"role": "user", "content": "second"},
        {"role": "assistant", "content": "NODA1/echo: second"},
        {"role": "user", "content": "third"},
    ]
    assert asked(nodes, "third")["prompt"] == (
        "User: first\n\nAssistant: NODA1/echo: first\n\nUser: second\n\nAssistant: NODA1/echo: second\n\nUser: third"
    )
    # The first message had nothing before it: its prompt is its text alone.
    assert asked(nodes, "first")["prompt"] == "first"


def test_context_turns_bounds_how_far_back_a_message_reaches(alice, nodes):
    chat = alice.new_chat()
    change(alice, chat["id"], context_turns=1)
    for text in ("one", "two", "three"):
        send(alice, chat["id"], text)
    assert [m["content"] for m in asked(nodes, "three")["messages"]] == ["two", "NODA1/echo: two", "three"]


def test_context_turns_zero_sends_the_text_alone(alice, nodes):
    chat = alice.new_chat()
    change(alice, chat["id"], context_turns=0)
    send(alice, chat["id"], "earlier")
    send(alice, chat["id"], "alone")
    body = asked(nodes, "alone")
    assert body["messages"] == [{"role": "user", "content": "alone"}]
    assert body["prompt"] == "alone"


def test_a_failed_exchange_never_appears_in_a_later_message(alice, nodes, monkeypatch, settings):
    chat = alice.new_chat()
    send(alice, chat["id"], "good")
    settings.SOFIIA_NODES = {**settings.SOFIIA_NODES, "NODA1": "http://127.0.0.1:9"}  # nothing listens there
    assert send(alice, chat["id"], "unanswered").status_code == 502
    settings.SOFIIA_NODES = {**settings.SOFIIA_NODES, "NODA1": nodes["NODA1"].url}
    send(alice, chat["id"], "next")
    assert [m["content"] for m in asked(nodes, "next")["messages"]] == ["good", "NODA1/echo: good", "next"]


def test_a_retried_message_carries_the_context_it_had_the_first_time(alice, nodes, settings):
    chat = alice.new_chat()
    send(alice, chat["id"], "before")
    retried = key()
    settings.SOFIIA_NODES = {**settings.SOFIIA_NODES, "NODA1": "http://127.0.0.1:9"}
    assert send(alice, chat["id"], "flaky", idempotency_key=retried).status_code == 502
    settings.SOFIIA_NODES = {**settings.SOFIIA_NODES, "NODA1": nodes["NODA1"].url}
    # Later exchanges, and a change of settings, happen before the retry.
    send(alice, chat["id"], "meanwhile")
    change(alice, chat["id"], system_prompt="Changed since.", context_turns=5)
    assert send(alice, chat["id"], "flaky", idempotency_key=retried).status_code == 201
    body = asked(nodes, "flaky")
    assert [m["content"] for m in body["messages"]] == ["before", "NODA1/echo: before", "flaky"]
    assert body["system_prompt"] is None


def test_the_budget_drops_the_oldest_turns_and_never_cuts_the_new_text(alice, nodes, settings):
    settings.SOFIIA_CONTEXT_MAX_CHARS = 100
    chat = alice.new_chat()
    send(alice, chat["id"], "a" * 30)  # with its echo: 30 + 43 characters
    send(alice, chat["id"], "b" * 10)  # 10 + 23
    long_text = "c" * 5000
    assert send(alice, chat["id"], long_text).status_code == 201
    contents = [m["content"] for m in asked(nodes, long_text)["messages"]]
    assert contents == ["b" * 10, f"NODA1/echo: {'b' * 10}", long_text]


def test_the_send_event_proves_the_exact_body_the_node_received(alice, nodes):
    chat = alice.new_chat()
    send(alice, chat["id"], "first")
    response = send(alice, chat["id"], "second")
    message_id = response.json()["operator_message"]["id"]
    (call,) = nodes["NODA1"].calls_with("second")
    event = AuditEvent.objects.get(action="message.send", target_id=str(message_id))
    assert event.details["infer_sha256"] == infer_body_digest(call.body)
    assert infer_body_bytes(call.body) == call.raw
    first = Message.objects.get(text="first")
    assert event.details["context_ids"] == [first.pk, first.reply.pk]


def test_audit_prompt_verifies_a_sent_message_and_fails_on_a_tampered_one(alice, nodes):
    chat = alice.new_chat()
    send(alice, chat["id"], "what was asked?")
    message_id = send(alice, chat["id"], "and then?").json()["operator_message"]["id"]
    out = StringIO()
    call_command("audit_prompt", str(message_id), stdout=out)
    printed, verdict = out.getvalue().rsplit("\n", 2)[0], out.getvalue().strip().splitlines()[-1]
    (call,) = nodes["NODA1"].calls_with("and then?")
    assert json.loads(printed) == call.body
    assert verdict.startswith(f"verified: message {message_id}")

    Message.objects.filter(text="what was asked?").update(text="what was NOT asked?")
    with pytest.raises(CommandError, match="MISMATCH"):
        call_command("audit_prompt", str(message_id), stdout=StringIO())
