"""The console's chat list: last activity, previews, badges, search, rename and archive."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEvent
from chats.models import Chat, Message
from nodes.registry import advertised_agents


@pytest.fixture
def console(alice):
    client = Client()
    assert client.login(username="alice", password=alice.password)
    return client


def listed_titles(page: str) -> list[str]:
    return re.findall(r'<span class="title">([^<]*)</span>', page)


def test_the_list_is_ordered_by_last_activity_not_creation(alice, console, clock):
    first = alice.new_chat(title="first")
    alice.new_chat(title="second")
    assert listed_titles(console.get("/console/").content.decode()) == ["second", "first"]
    clock(2)  # last activity has a resolution of one second
    assert alice.send(first["id"], "wake up", key="k1").status_code == 201
    assert listed_titles(console.get("/console/").content.decode()) == ["first", "second"]
    # The API's contract order (creation, newest first) is unchanged.
    assert [c["title"] for c in alice.api.get("/api/chats").json()["items"]] == ["second", "first"]
    chat = Chat.objects.get(pk=first["id"])
    assert chat.last_activity_at == Message.objects.get(chat=chat, role="operator").ts


def chat_updates(queries: CaptureQueriesContext) -> int:
    return sum(q["sql"].startswith('UPDATE "chats_chat"') for q in queries.captured_queries)


def test_a_burst_of_sends_moves_last_activity_once_a_second(alice, clock):
    chat = alice.new_chat()
    clock(2)
    with CaptureQueriesContext(connection) as queries:
        assert alice.send(chat["id"], "one", key="k1").status_code == 201
    assert chat_updates(queries) == 1
    first = Chat.objects.get(pk=chat["id"]).last_activity_at
    with CaptureQueriesContext(connection) as queries:
        assert alice.send(chat["id"], "two", key="k2").status_code == 201
    assert chat_updates(queries) == 0  # the chat as the send read it was active a moment ago
    assert Chat.objects.get(pk=chat["id"]).last_activity_at == first
    clock(2)
    assert alice.send(chat["id"], "three", key="k3").status_code == 201
    third = Message.objects.get(role="operator", text="three")
    assert Chat.objects.get(pk=chat["id"]).last_activity_at == third.ts
    assert AuditEvent.objects.filter(action="message.send", chat_id=chat["id"]).count() == 3


def test_each_chat_shows_a_preview_and_its_undelivered_badges(alice, console):
    quiet = alice.new_chat(title="quiet")
    broken = alice.new_chat(title="broken", agent="fail500")
    waiting = alice.new_chat(title="waiting")
    assert alice.send(quiet["id"], "hello there", key="k1").status_code == 201
    assert alice.send(broken["id"], "will fail", key="k2").status_code == 502
    Message.objects.create(
        chat_id=waiting["id"], role="operator", text="stuck", node="NODA1", status="pending", operator=alice.user
    )
    page = console.get("/console/").content.decode()
    rows = dict(re.findall(r'<span class="title">([^<]*)</span>(.*?)</a>', page, re.S))
    assert "NODA1/echo: hello there" in rows["quiet"]
    assert "badge" not in rows["quiet"]
    assert "badge failed" in rows["broken"]
    assert "You: will fail" in rows["broken"]
    assert "badge pending" in rows["waiting"]
    assert "badge failed" not in rows["waiting"]


def test_search_finds_chats_by_title_and_pages_within_the_search(alice, console):
    for title in ("Deploy NODA1", "deploy NODA2", "Billing"):
        alice.new_chat(title=title)
    page = console.get("/console/", {"q": "DEPLOY"}).content.decode()
    assert sorted(listed_titles(page)) == ["Deploy NODA1", "deploy NODA2"]
    assert "No chat has that in its title." in console.get("/console/", {"q": "nothing"}).content.decode()


def test_a_cursor_of_another_search_is_refused(alice, console):
    for number in range(51):
        alice.new_chat(title=f"chat {number}")
    page = console.get("/console/").content.decode()
    cursor = re.search(r'href="\?cursor=([^"&]+)', page).group(1)
    assert console.get(f"/console/?cursor={cursor}").status_code == 200
    response = console.get(f"/console/?cursor={cursor}&q=chat")
    assert response.status_code == 400
    assert "Bad request" in response.content.decode()


def test_renaming_a_chat_is_audited(alice, console):
    chat = alice.new_chat(title="old name")
    response = console.post(f"/console/chats/{chat['id']}/rename", {"title": "  new name  "})
    assert response.status_code == 302
    assert Chat.objects.get(pk=chat["id"]).title == "new name"
    event = AuditEvent.objects.get(action="chat.change")
    assert (event.actor, event.chat_id, event.outcome) == ("alice", chat["id"], "success")
    assert event.details == {"changes": {"title": {"old": "old name", "new": "new name"}}}
    assert alice.api.get(f"/api/chats/{chat['id']}").json()["title"] == "new name"


def test_a_bad_title_is_refused_and_nothing_is_audited(alice, console):
    chat = alice.new_chat(title="kept")
    for title in ("", "   ", "x" * 201):
        response = console.post(f"/console/chats/{chat['id']}/rename", {"title": title}, follow=True)
        assert "The title must be 1 to 200 characters." in response.content.decode()
    assert Chat.objects.get(pk=chat["id"]).title == "kept"
    assert not AuditEvent.objects.filter(action="chat.change").exists()


def test_archiving_hides_a_chat_and_unarchiving_brings_it_back(alice, console):
    chat = alice.new_chat(title="to archive")
    alice.new_chat(title="stays")
    response = console.post(f"/console/chats/{chat['id']}/archive", {"archived": "on"})
    assert response["Location"] == "/console/"
    assert listed_titles(console.get("/console/").content.decode()) == ["stays"]
    assert listed_titles(console.get("/console/", {"archived": "1"}).content.decode()) == ["to archive"]
    # Still a chat: it opens, and the API still lists it.
    assert console.get(f"/console/chats/{chat['id']}/").status_code == 200
    assert len(alice.api.get("/api/chats").json()["items"]) == 2
    console.post(f"/console/chats/{chat['id']}/archive", {})
    assert sorted(listed_titles(console.get("/console/").content.decode())) == ["stays", "to archive"]
    events = list(AuditEvent.objects.filter(chat_id=chat["id"]).order_by("id").values_list("action", "details"))
    assert events == [
        ("chat.create", {"title": "to archive", "agent": "echo", "node": "NODA1"}),
        ("chat.change", {"changes": {"archived": {"old": False, "new": True}}}),
        ("chat.change", {"changes": {"archived": {"old": True, "new": False}}}),
    ]


def test_archiving_twice_records_one_event(alice, console):
    chat = alice.new_chat()
    for _ in range(2):
        console.post(f"/console/chats/{chat['id']}/archive", {"archived": "on"})
    assert AuditEvent.objects.filter(action="chat.change").count() == 1


def test_another_operators_chat_cannot_be_renamed_or_archived(alice, bob):
    chat = alice.new_chat(title="alice's")
    client = Client()
    client.login(username="bob", password=bob.password)
    assert client.post(f"/console/chats/{chat['id']}/rename", {"title": "bob's"}).status_code == 404
    assert client.post(f"/console/chats/{chat['id']}/archive", {"archived": "on"}).status_code == 404
    stored = Chat.objects.get(pk=chat["id"])
    assert (stored.title, stored.archived_at) == ("alice's", None)
    assert not AuditEvent.objects.filter(action="chat.change").exists()


def test_an_expired_session_on_rename_logs_in_back_to_the_chat(alice):
    chat = alice.new_chat()
    response = Client().post(f"/console/chats/{chat['id']}/rename", {"title": "x"})
    assert response.status_code == 302
    assert response["Location"] == f"/console/login/?next=/console/chats/{chat['id']}/"
    assert not AuditEvent.objects.filter(action="chat.change").exists()


def test_agent_suggestions_come_from_what_the_nodes_advertise(console):
    page = console.get("/console/").content.decode()
    datalist = re.search(r'<datalist id="agent-suggestions">(.*?)</datalist>', page).group(1)
    assert re.findall(r'value="([^"]+)"', datalist) == ["echo", "slow5"]
    assert 'list="agent-suggestions"' in page


@pytest.mark.parametrize(
    ("body", "agents"),
    [
        ({"agents": ["b", "a", "a"]}, ("a", "b")),
        ({"agents": [{"name": "x"}, {"id": "y"}, 3, "bad name", "ok.1"]}, ("ok.1", "x")),
        ({"agents": [".", "..", "...", "a/b"]}, ("...",)),
        ({"agents": "echo"}, ()),
        (["echo"], ()),
        (None, ()),
    ],
)
def test_only_valid_agent_names_are_taken_from_a_health_body(body, agents):
    assert advertised_agents(body) == agents


def test_the_migration_starts_last_activity_at_the_newest_message(alice):
    """The data step of 0004: a chat's last activity is its newest message, or its creation."""
    from importlib import import_module

    from django.apps import apps

    migration = import_module("chats.migrations.0004_console_activity_archive")
    old, new = alice.new_chat(title="old"), alice.new_chat(title="empty")
    long_ago = timezone.now() - timedelta(days=3)
    Message.objects.create(chat_id=old["id"], role="agent", text="x", node="NODA1", status="delivered", ts=long_ago)
    Chat.objects.update(last_activity_at=timezone.now() + timedelta(days=1))
    migration.backfill_last_activity(apps, None)
    assert Chat.objects.get(pk=old["id"]).last_activity_at == long_ago
    empty = Chat.objects.get(pk=new["id"])
    assert empty.last_activity_at == empty.created_at
