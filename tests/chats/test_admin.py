"""Chats and messages in the admin: every chat change is audited and checked like the API
checks it; messages cannot be added, changed or deleted there."""

from __future__ import annotations

import uuid

import pytest

from audit.chain import chain_verify
from audit.models import AuditEvent
from chats.models import Chat, Message
from tests.personas import make_admin


@pytest.fixture
def root(db):
    return make_admin("root")


def change(root, chat, **values):
    form = {"title": chat.title, "agent": chat.agent, "node": chat.node, **values}
    return root.admin.post(f"/admin/chats/chat/{chat.pk}/change/", form)


def test_changing_a_chat_in_the_admin_is_audited(root, alice):
    chat = Chat.objects.get(pk=alice.new_chat(agent="planner")["id"])
    response = change(root, chat, agent="reviewer", node="NODA2")
    assert response.status_code == 302, response.content
    chat.refresh_from_db()
    assert (chat.agent, chat.node) == ("reviewer", "NODA2")
    event = AuditEvent.objects.get(action="chat.change")
    assert (event.actor, event.target_id, event.chat_id) == ("root", str(chat.pk), chat.pk)
    assert (event.details["agent"], event.details["node"], event.details["via"]) == ("reviewer", "NODA2", "admin")
    assert chain_verify().ok


@pytest.mark.parametrize(("field", "value"), [("agent", ".."), ("agent", "."), ("agent", "a/b"), ("node", "NODA9")])
def test_a_chat_cannot_get_an_agent_or_node_the_api_would_refuse(root, alice, field, value):
    chat = Chat.objects.get(pk=alice.new_chat()["id"])
    response = change(root, chat, **{field: value})
    assert response.status_code == 200  # the form again, with the error
    chat.refresh_from_db()
    assert getattr(chat, field) != value
    assert not AuditEvent.objects.filter(action="chat.change").exists()


def test_a_chat_and_its_record_cannot_be_deleted_in_the_admin(root, alice):
    chat_id = alice.new_chat()["id"]
    alice.send(chat_id, "about to go", key=uuid.uuid4().hex)
    response = root.admin.post(f"/admin/chats/chat/{chat_id}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert Message.objects.filter(chat_id=chat_id).count() == 2


def test_messages_are_read_only_in_the_admin_even_for_a_superuser(root, alice):
    chat_id = alice.new_chat()["id"]
    alice.send(chat_id, "on the record", key=uuid.uuid4().hex)
    message = Message.objects.filter(role="operator").get()
    assert root.admin.get(f"/admin/chats/message/{message.pk}/change/").status_code == 200  # viewable
    assert root.admin.post(f"/admin/chats/message/{message.pk}/change/", {"text": "rewritten"}).status_code == 403
    assert root.admin.post(f"/admin/chats/message/{message.pk}/delete/", {"post": "yes"}).status_code == 403
    assert root.admin.get("/admin/chats/message/add/").status_code == 403
    message.refresh_from_db()
    assert message.text == "on the record"
