"""A chat's settings: on create, in every chat body, and PATCH /api/chats/{id} (one chat.change
audit event per change, within the operator's chat-change quota)."""

from __future__ import annotations

import pytest
from django.test import Client

from audit.models import AuditEvent
from chats.models import Chat
from sofiia.lib.env import RatePolicy

SETTINGS = {
    "system_prompt": "You are terse.",
    "model": "llama-3-8b",
    "temperature": 0.7,
    "max_tokens": 512,
    "context_turns": 4,
}


def change_events(chat_id):
    return list(AuditEvent.objects.filter(action="chat.change", chat_id=chat_id).order_by("id"))


def test_a_chat_is_created_with_its_settings(alice):
    response = alice.api.post("/api/chats", {"title": "tuned", "agent": "echo", **SETTINGS}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert {name: body[name] for name in SETTINGS} == SETTINGS
    assert body["archived"] is False
    chat = Chat.objects.get(pk=body["id"])
    assert (chat.system_prompt, chat.model, chat.temperature, chat.max_tokens, chat.context_turns) == tuple(
        SETTINGS.values()
    )
    event = AuditEvent.objects.get(action="chat.create")
    assert event.details == {"title": "tuned", "agent": "echo", "node": "NODA1", **SETTINGS}


def test_a_new_chat_takes_the_configured_context_turns(alice, settings):
    settings.SOFIIA_CONTEXT_TURNS = 3
    assert alice.new_chat()["context_turns"] == 3


def test_patch_changes_the_given_fields_and_records_old_and_new_values(alice):
    chat = alice.new_chat(title="before")
    response = alice.api.patch(
        f"/api/chats/{chat['id']}", {"title": "after", "temperature": 1.5, "model": "qwen"}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["title"], body["temperature"], body["model"], body["max_tokens"]) == ("after", 1.5, "qwen", None)
    assert alice.api.get(f"/api/chats/{chat['id']}").json() == body
    [event] = change_events(chat["id"])
    assert (event.actor, event.outcome, event.target_type, event.target_id) == (
        "alice",
        "success",
        "chat",
        str(chat["id"]),
    )
    assert event.details == {
        "changes": {
            "title": {"old": "before", "new": "after"},
            "temperature": {"old": None, "new": 1.5},
            "model": {"old": None, "new": "qwen"},
        }
    }


def test_only_the_fields_that_changed_are_recorded_and_an_unchanged_patch_records_nothing(alice):
    chat = alice.new_chat(title="same")
    response = alice.api.patch(f"/api/chats/{chat['id']}", {"title": "same", "max_tokens": 100}, format="json")
    assert response.status_code == 200
    [event] = change_events(chat["id"])
    assert event.details == {"changes": {"max_tokens": {"old": None, "new": 100}}}
    again = alice.api.patch(f"/api/chats/{chat['id']}", {"title": "same", "max_tokens": 100}, format="json")
    assert again.status_code == 200
    assert len(change_events(chat["id"])) == 1


def test_archiving_through_the_api_takes_the_chat_off_the_console_list_and_back(alice):
    chat = alice.new_chat()
    response = alice.api.patch(f"/api/chats/{chat['id']}", {"archived": True}, format="json")
    assert response.json()["archived"] is True
    assert Chat.objects.get(pk=chat["id"]).archived_at is not None
    response = alice.api.patch(f"/api/chats/{chat['id']}", {"archived": False}, format="json")
    assert response.json()["archived"] is False
    assert Chat.objects.get(pk=chat["id"]).archived_at is None
    assert [e.details for e in change_events(chat["id"])] == [
        {"changes": {"archived": {"old": False, "new": True}}},
        {"changes": {"archived": {"old": True, "new": False}}},
    ]


def test_settings_can_be_cleared_back_to_null(alice):
    chat = alice.api.post("/api/chats", {"title": "t", "agent": "echo", **SETTINGS}, format="json").json()
    response = alice.api.patch(
        f"/api/chats/{chat['id']}",
        {"model": None, "temperature": None, "max_tokens": None, "system_prompt": ""},
        format="json",
    )
    body = response.json()
    assert (body["model"], body["temperature"], body["max_tokens"], body["system_prompt"]) == (None, None, None, "")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": 5}, "title"),
        ({"archived": "yes"}, "archived"),
        ({"archived": 1}, "archived"),
        ({"archived": None}, "archived"),
        ({"system_prompt": "x" * 8001}, "system_prompt"),
        ({"system_prompt": None}, "system_prompt"),
        ({"system_prompt": "a\x00b"}, "system_prompt"),
        ({"model": "m" * 201}, "model"),
        ({"model": 3}, "model"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": 2.01}, "temperature"),
        ({"temperature": "1"}, "temperature"),
        ({"temperature": True}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 32769}, "max_tokens"),
        ({"max_tokens": 1.5}, "max_tokens"),
        ({"max_tokens": "10"}, "max_tokens"),
        ({"context_turns": -1}, "context_turns"),
        ({"context_turns": 51}, "context_turns"),
        ({"context_turns": None}, "context_turns"),
        ({"context_turns": False}, "context_turns"),
        ({"colour": "blue"}, "colour"),
        ({"agent": "other"}, "agent"),
        ({"node": "NODA2"}, "node"),
    ],
)
def test_a_bad_change_is_a_400_naming_the_field_and_changes_nothing(alice, body, field):
    chat = alice.new_chat(title="kept")
    response = alice.api.patch(f"/api/chats/{chat['id']}", body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()
    assert error["error"] == "invalid_input"
    assert field in error["fields"]
    assert alice.api.get(f"/api/chats/{chat['id']}").json() == chat
    assert change_events(chat["id"]) == []


def test_an_empty_change_changes_nothing_and_records_nothing(alice):
    chat = alice.new_chat(title="kept")
    response = alice.api.patch(f"/api/chats/{chat['id']}", {}, format="json")
    assert (response.status_code, response.json()) == (200, chat)
    assert change_events(chat["id"]) == []


@pytest.mark.parametrize("payload", [b"[]", b'"text"', b"null", b"{not json", b'{"temperature": NaN}'])
def test_a_change_that_is_not_a_json_object_is_a_400(alice, payload):
    chat = alice.new_chat()
    response = alice.api.patch(f"/api/chats/{chat['id']}", payload, content_type="application/json")
    assert response.status_code == 400
    assert isinstance(response.json()["error"], str)
    assert change_events(chat["id"]) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [({"temperature": 3}, "temperature"), ({"context_turns": 99}, "context_turns"), ({"colour": "x"}, "colour")],
)
def test_bad_settings_on_create_are_a_400(alice, body, field):
    response = alice.api.post("/api/chats", {"title": "t", "agent": "echo", **body}, format="json")
    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert not Chat.objects.exists()


def test_another_operators_chat_is_not_found_and_unchanged(alice, bob):
    chat = alice.new_chat(title="alice's")
    response = bob.api.patch(f"/api/chats/{chat['id']}", {"title": "bob's"}, format="json")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert Chat.objects.get(pk=chat["id"]).title == "alice's"
    assert change_events(chat["id"]) == []


def test_an_anonymous_change_is_a_401(alice, anonymous):
    chat = alice.new_chat()
    assert anonymous.patch(f"/api/chats/{chat['id']}", {"title": "x"}, format="json").status_code == 401


def test_a_flood_of_changes_is_limited_and_every_change_made_has_its_event(alice, settings, clock):
    settings.SOFIIA_RATE_LIMIT_CHAT_CHANGE = RatePolicy(limit=30, window=60)
    chats = [alice.new_chat(title=f"chat {n}") for n in range(2)]
    statuses = []
    archived = {chat["id"]: False for chat in chats}
    for number in range(200):
        chat = chats[number % 2]
        # Every request asks for a real change: a new title, or the other archive state.
        body = {"title": f"title {number}"} if number % 4 < 2 else {"archived": not archived[chat["id"]]}
        response = alice.api.patch(f"/api/chats/{chat['id']}", body, format="json")
        statuses.append(response.status_code)
        if response.status_code == 200:
            archived[chat["id"]] = response.json()["archived"]
        if response.status_code == 429:
            error = response.json()
            assert (error["error"], error["scope"]) == ("rate_limited", "chat_change")
            assert int(response["Retry-After"]) == error["retry_after"] >= 1
    assert statuses.count(200) == 30
    assert set(statuses) == {200, 429}
    events = AuditEvent.objects.filter(action="chat.change", chat_id__in=[c["id"] for c in chats])
    assert events.count() == statuses.count(200)
    assert AuditEvent.objects.filter(action="ratelimit.block", details__scope="chat_change").exists()
    # The window passes: changes are taken again.
    clock(61)
    assert alice.api.patch(f"/api/chats/{chats[0]['id']}", {"title": "at last"}, format="json").status_code == 200
    assert events.count() == 31


def test_the_console_rename_over_the_quota_says_when_to_retry(alice, settings):
    settings.SOFIIA_RATE_LIMIT_CHAT_CHANGE = RatePolicy(limit=1, window=60)
    chat = alice.new_chat(title="first")
    console = Client()
    console.login(username="alice", password=alice.password)
    console.post(f"/console/chats/{chat['id']}/rename", {"title": "second"})
    response = console.post(f"/console/chats/{chat['id']}/rename", {"title": "third"}, follow=True)
    assert "Too many changes to chats" in response.content.decode()
    assert Chat.objects.get(pk=chat["id"]).title == "second"
    assert len(change_events(chat["id"])) == 1
