"""The endpoints the console's live workspace polls: forward pages of a chat's messages, the
chat list's state with unread replies, and the chat marked read."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client

from chats.models import Chat, Message
from chats.views import POLL_LIMIT, UNREAD_CAP
from sofiia.lib.clock import clock_now


@pytest.fixture
def console(alice):
    client = Client()
    assert client.login(username="alice", password=alice.password)
    return client


def ids_in(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<li id="m(\d+)"', html)]


def poll_cursor(console: Client, chat_id: int) -> str:
    page = console.get(f"/console/chats/{chat_id}/").content.decode()
    return re.search(r'data-cursor="([^"]*)"', page).group(1)


def burst(chat_id: int, count: int, *, start=None) -> list[Message]:
    start = start or clock_now()
    return Message.objects.bulk_create(
        Message(chat_id=chat_id, role="agent", node="NODA1", status="delivered", text=f"burst {n}",
                ts=start + timedelta(milliseconds=n))
        for n in range(count)
    )  # fmt: skip


def test_a_burst_larger_than_one_answer_comes_in_pages_each_message_once(alice, console):
    chat = alice.new_chat()
    burst(chat["id"], 1, start=clock_now() - timedelta(hours=1))
    cursor = poll_cursor(console, chat["id"])
    sent = burst(chat["id"], POLL_LIMIT + 50)
    url = f"/console/chats/{chat['id']}/updates"
    first = console.get(url, {"cursor": cursor}).json()
    assert first["more"] is True
    assert ids_in(first["html"]) == [m.pk for m in sent[:POLL_LIMIT]]
    second = console.get(url, {"cursor": first["cursor"]}).json()
    assert second["more"] is False
    assert ids_in(second["html"]) == [m.pk for m in sent[POLL_LIMIT:]]
    # Caught up: nothing rendered again, the ids of the recent ones for the page to check.
    third = console.get(url, {"cursor": second["cursor"]}).json()
    assert (ids_in(third["html"]), third["more"], third["cursor"]) == ([], False, second["cursor"])
    assert set(third["recent"]) <= {m.pk for m in sent}
    assert third["recent"][0] == sent[-1].pk


def test_a_message_committed_late_is_named_among_the_recent_and_comes_when_watched(alice, console):
    chat = alice.new_chat()
    burst(chat["id"], 2)
    cursor = poll_cursor(console, chat["id"])
    late = Message.objects.create(
        chat_id=chat["id"],
        role="agent",
        node="NODA1",
        status="delivered",
        text="late",
        ts=clock_now() - timedelta(seconds=5),
    )
    url = f"/console/chats/{chat['id']}/updates"
    body = console.get(url, {"cursor": cursor}).json()
    assert late.pk in body["recent"]
    assert ids_in(body["html"]) == []
    watched = console.get(url, {"cursor": cursor, "watch": str(late.pk)}).json()
    assert ids_in(watched["html"]) == [late.pk]


def test_the_list_updates_carry_badges_previews_and_unread_replies(alice, bob, console):
    read = alice.new_chat(title="read")
    unread = alice.new_chat(title="unread")
    assert alice.send(read["id"], "seen", key="k1").status_code == 201
    assert alice.send(unread["id"], "**bold** question", key="k2").status_code == 201
    bob.new_chat(title="not alice's")
    assert console.post(f"/console/chats/{read['id']}/read").status_code == 204
    body = console.get("/console/updates").json()
    by_title = {item["title"]: item for item in body["chats"]}
    assert set(by_title) == {"read", "unread"}
    assert by_title["read"]["unread"] == 0
    assert by_title["unread"]["unread"] == 1
    assert by_title["unread"]["preview"] == "NODA1/echo: bold question"
    assert (by_title["unread"]["pending"], by_title["unread"]["failed"]) == (False, False)
    assert by_title["unread"]["url"] == f"/console/chats/{unread['id']}/"
    assert body["unread"] == 1
    assert [item["title"] for item in body["chats"]] == ["unread", "read"]


def test_unread_replies_are_counted_up_to_the_cap(alice, console):
    chat = alice.new_chat()
    burst(chat["id"], UNREAD_CAP + 5)
    Chat.objects.filter(pk=chat["id"]).update(last_activity_at=clock_now() + timedelta(seconds=1))
    (item,) = console.get("/console/updates").json()["chats"]
    assert item["unread"] == UNREAD_CAP


def test_marking_read_follows_the_pages_cursor_and_never_moves_back(alice, console):
    chat = alice.new_chat()
    assert alice.send(chat["id"], "hello", key="k").status_code == 201
    reply = Message.objects.get(role="agent")
    cursor = poll_cursor(console, chat["id"])
    assert console.post(f"/console/chats/{chat['id']}/read", {"cursor": cursor}).status_code == 204
    assert Chat.objects.get(pk=chat["id"]).last_read_at == reply.ts
    Chat.objects.filter(pk=chat["id"]).update(last_read_at=reply.ts + timedelta(hours=1))
    console.post(f"/console/chats/{chat['id']}/read", {"cursor": cursor})
    assert Chat.objects.get(pk=chat["id"]).last_read_at == reply.ts + timedelta(hours=1)


def test_marking_read_refuses_a_bad_cursor_a_get_and_another_operators_chat(alice, bob, console):
    chat = alice.new_chat()
    url = f"/console/chats/{chat['id']}/read"
    response = console.post(url, {"cursor": "forged"})
    assert (response.status_code, response.json()["error"]) == (400, "invalid_cursor")
    assert console.get(url).status_code == 405
    other = Client()
    other.login(username="bob", password=bob.password)
    assert other.post(url).status_code == 404
    assert Chat.objects.get(pk=chat["id"]).last_read_at is None
