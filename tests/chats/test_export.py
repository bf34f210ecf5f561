"""GET /api/chats/{id}/export: the chat and every message, streamed, one chat.export event."""

# Ukrainian text is what these tests are about.

from __future__ import annotations

import json

import pytest

from audit.models import AuditEvent
from chats.models import Chat, Message
from chats.selectors import message_iter_for_export
from tests.chats.conversation_helpers import at, exchange, operator_message


@pytest.fixture
def chat(alice):
    return Chat.objects.create(
        owner=alice.user, title="Звіт\nfor Olena", agent="echo", node="NODA1", system_prompt="Be brief.", model="m-1"
    )


def body_of(response):
    return b"".join(response.streaming_content).decode("utf-8")


def test_a_json_export_has_the_chat_and_every_message_in_order(alice, chat):
    first = exchange(chat, "Привіт", "Вітаю", ts=at(0))
    failed = operator_message(chat, "lost", ts=at(10), status=Message.Status.FAILED)
    response = alice.api.get(f"/api/chats/{chat.pk}/export", {"format": "json"})
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="chat-{chat.pk}.json"'
    document = json.loads(body_of(response))
    assert document["chat"] == alice.api.get(f"/api/chats/{chat.pk}").json()
    assert [m["id"] for m in document["messages"]] == [first[0].pk, first[1].pk, failed.pk]
    assert document["messages"][1]["model"] == "m-1"
    assert document["messages"][2]["failure"] == "node_unavailable"
    event = AuditEvent.objects.get(action="chat.export")
    assert (event.actor, event.chat_id, event.target_id, event.details) == (
        "alice",
        chat.pk,
        str(chat.pk),
        {"format": "json"},
    )


def test_json_is_the_default_format(alice, chat):
    response = alice.api.get(f"/api/chats/{chat.pk}/export")
    assert response.status_code == 200
    assert json.loads(body_of(response))["messages"] == []


def test_a_markdown_export_is_a_transcript(alice, chat):
    exchange(chat, "Привіт", "Вітаю", ts=at(0))
    response = alice.api.get(f"/api/chats/{chat.pk}/export", {"format": "md"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="chat-{chat.pk}.md"'
    text = body_of(response)
    assert text.startswith("# Звіт for Olena\n")
    assert "- model: m-1\n" in text
    assert "## System prompt\n\nBe brief.\n" in text
    assert text.index("### operator ·") < text.index("Привіт") < text.index("### agent ·") < text.index("Вітаю")
    assert AuditEvent.objects.get(action="chat.export").details == {"format": "md"}


def test_a_long_chat_is_read_in_batches_in_order(alice, chat):
    Message.objects.bulk_create(
        Message(chat=chat, role="operator", text=f"m{n}", ts=at(n // 4), node="NODA1", status="delivered")
        for n in range(23)
    )
    texts = [m.text for m in message_iter_for_export(chat=chat, batch=5)]
    assert texts == [f"m{n}" for n in range(23)]
    document = json.loads(body_of(alice.api.get(f"/api/chats/{chat.pk}/export")))
    assert [m["text"] for m in document["messages"]] == texts


@pytest.mark.parametrize("fmt", ["xml", "JSON", "csv", "md "])
def test_an_unknown_format_is_a_400_and_nothing_is_recorded(alice, chat, fmt):
    response = alice.api.get(f"/api/chats/{chat.pk}/export", {"format": fmt})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_input"
    assert not AuditEvent.objects.filter(action="chat.export").exists()


def test_another_operators_chat_cannot_be_exported(bob, chat):
    response = bob.api.get(f"/api/chats/{chat.pk}/export")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert not AuditEvent.objects.filter(action="chat.export").exists()


def test_an_anonymous_export_is_a_401(anonymous, chat):
    assert anonymous.get(f"/api/chats/{chat.pk}/export").status_code == 401
