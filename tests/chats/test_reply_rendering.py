"""Replies are rendered once, when stored: pages show the stored HTML (or the reply as plain
text when it is past the renderer's bounds), and never render a reply again."""

from __future__ import annotations

import re
import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from chats.markdown import PLAIN_SHOWN_MAX_CHARS, REPLY_TABLE_MAX_CELLS, reply_html
from chats.models import Message
from tests.chats.test_markdown import assert_only_allowed, table


@pytest.fixture
def console(alice):
    client = Client()
    assert client.login(username="alice", password=alice.password)
    return client


@pytest.fixture
def node_answers(monkeypatch):
    """Make the dev routers (real nodes over HTTP) answer ``text`` to every prompt."""

    def answer(text: str) -> None:
        monkeypatch.setattr("nodes.devrouter.reply_text", lambda node, agent, prompt: text)

    return answer


def reply_item(page: str, reply: Message) -> str:
    """The reply's ``<li>`` on a page (or in a script's fetch)."""
    match = re.search(rf'<li id="m{reply.pk}" .*?</li>', page, re.S)
    assert match is not None, f"reply {reply.pk} is not on the page"
    return match.group()


def send(alice, chat_id: int, text: str = "question") -> Message:
    response = alice.send(chat_id, text, key=uuid.uuid4().hex)
    assert response.status_code == 201, response.content
    reply = Message.objects.get(pk=response.json()["reply"]["id"])
    event = AuditEvent.objects.get(action="message.send", target_id=str(response.json()["operator_message"]["id"]))
    assert (event.outcome, event.details["reply_id"]) == ("delivered", reply.pk)
    return reply


def test_a_reply_is_rendered_when_stored_and_the_page_shows_that_html(alice, console, node_answers):
    text = "**Done.**\n\n| host | load |\n|:--|--:|\n| a | 0.5 |"
    node_answers(text)
    chat = alice.new_chat()
    reply = send(alice, chat["id"])
    assert reply.html == reply_html(text)
    assert '<td class="align-right">0.5</td>' in reply.html
    page = console.get(f"/console/chats/{chat['id']}/").content.decode()
    assert f'<div class="text md">{reply.html}</div>' in reply_item(page, reply)
    # What the page shows is what was stored: the page renders nothing itself.
    Message.objects.filter(pk=reply.pk).update(html="<p>as stored</p>")
    page = console.get(f"/console/chats/{chat['id']}/").content.decode()
    assert '<div class="text md"><p>as stored</p></div>' in reply_item(page, reply)
    older = console.get(f"/console/chats/{chat['id']}/updates").json()["html"]
    assert '<div class="text md"><p>as stored</p></div>' in reply_item(older, reply)


def test_a_hostile_reply_reaches_the_page_as_text_without_markup_or_styles(alice, console, node_answers):
    text = (
        '<script>alert(1)</script> <img src=x onerror="alert(2)"> [x](javascript:alert(3)) '
        '[y](http://e.org "t\\" onmouseover=\\"alert(4)") <b style="color:red">b</b>\n\n'
        '```"><script>alert(5)</script>\ncode\n```\n\n| a |\n|--:|\n| <i onclick=alert(6)>x</i> |'
    )
    node_answers(text)
    chat = alice.new_chat()
    reply = send(alice, chat["id"])
    item = reply_item(console.get(f"/console/chats/{chat['id']}/").content.decode(), reply)
    # The reply's HTML, up to the console's own footer and actions under it.
    after_start = item.split('<div class="text md">', 1)[1]
    shown = re.split(r'<p class="(?:foot|cut)">|<div class="msg-actions">', after_start)[0]
    assert_only_allowed(shown)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown
    assert re.search(r"<[^>]*\sstyle=", item) is None
    assert 'href="javascript' not in item
    assert "<script" not in item
    assert "<img" not in item


def test_a_reply_past_the_bounds_is_stored_and_shown_as_escaped_text(alice, console, node_answers):
    text = "<script>alert(1)</script>\n" + table(REPLY_TABLE_MAX_CELLS // 8, 8)  # cells past the bound
    assert len(text) < PLAIN_SHOWN_MAX_CHARS
    node_answers(text)
    chat = alice.new_chat()
    reply = send(alice, chat["id"])
    assert reply.text == text
    assert reply.html.startswith('<pre class="plain">\n&lt;script&gt;alert(1)&lt;/script&gt;\n| h0 | h1 |')
    item = reply_item(console.get(f"/console/chats/{chat['id']}/").content.decode(), reply)
    assert f'<div class="text md">{reply.html}</div>' in item
    assert "<table" not in item
    assert "<script" not in item
    assert "not shown here" not in item


def test_a_3_9_mb_reply_is_shown_in_part_and_the_page_reads_only_what_it_shows(alice, console):
    chat = alice.new_chat()
    text = "<b>" + table(40_000, 10, cell="0.12345")
    assert len(text) > 3_900_000
    reply = Message.objects.create(
        chat_id=chat["id"], role="agent", node="NODA1", status="delivered", text=text, html=reply_html(text)
    )
    with CaptureQueriesContext(connection) as queries:
        page = console.get(f"/console/chats/{chat['id']}/").content.decode()
    item = reply_item(page, reply)
    assert '<div class="text md"><pre class="plain" data-hidden=' in item
    assert "\n&lt;b&gt;| h0 |" in item
    assert f"The rest of this reply ({len(text) - PLAIN_SHOWN_MAX_CHARS} characters) is not shown here" in item
    assert len(page) < PLAIN_SHOWN_MAX_CHARS * 1.5
    # The reply's text (a reply with stored HTML) is never read: only its stored HTML is.
    listing = next(q["sql"] for q in queries.captured_queries if '"chats_message"."html"' in q["sql"])
    assert 'THEN "chats_message"."text"' in listing
    assert re.search(r'(SELECT|,) *"chats_message"\."text" *(,|FROM)', listing) is None


def test_a_reply_stored_without_html_is_shown_as_plain_text(alice, console):
    chat = alice.new_chat()
    text = "**not rendered** <i>x</i>\n" + "y" * PLAIN_SHOWN_MAX_CHARS
    reply = Message.objects.create(chat_id=chat["id"], role="agent", node="NODA1", status="delivered", text=text)
    item = reply_item(console.get(f"/console/chats/{chat['id']}/").content.decode(), reply)
    shown = text[:PLAIN_SHOWN_MAX_CHARS].replace("<", "&lt;").replace(">", "&gt;")
    assert f'<div class="text md"><pre class="plain">\n{shown}</pre></div>' in item
    assert f"The rest of this reply ({len(text) - PLAIN_SHOWN_MAX_CHARS} characters) is not shown here" in item


def test_the_chat_list_previews_a_reply_as_plain_text(alice, console, node_answers):
    node_answers("## Done\n\n**Restarted** `ingest` on [node 7](http://e.org/7):\n\n| a | b |\n|---|---|")
    chat = alice.new_chat(title="ops")
    send(alice, chat["id"], text="**restart** it")
    page = console.get("/console/").content.decode()
    assert '<span class="preview">Done Restarted ingest on node 7: a b</span>' in page
    other = alice.new_chat(title="mine")
    Message.objects.create(
        chat_id=other["id"], role="operator", node="NODA1", status="failed", text="**as typed**\n\nsecond  line",
        operator=alice.user, idempotency_key="k",
    )  # fmt: skip
    page = console.get("/console/").content.decode()
    assert '<span class="preview">You: **as typed** second line</span>' in page


def test_a_long_reply_previews_bounded(alice, console, node_answers):
    node_answers("**word** " * 500)
    chat = alice.new_chat()
    send(alice, chat["id"])
    preview = re.search(r'<span class="preview">(.*?)</span>', console.get("/console/").content.decode()).group(1)
    assert preview.startswith("word word")
    assert preview.endswith("word…")
    assert len(preview) <= 100
    assert "*" not in preview


@pytest.mark.django_db(transaction=True)
def test_the_migration_renders_the_replies_stored_before_it(alice):
    executor = MigrationExecutor(connection)
    before, after = (
        [("chats", "0006_search")],
        [("chats", "0007_render_stored_replies")],
    )
    executor.migrate(before)
    try:
        apps = executor.loader.project_state(before).apps
        old_chat, old_message = apps.get_model("chats", "Chat"), apps.get_model("chats", "Message")
        chat = old_chat.objects.create(owner_id=alice.user.pk, title="old", agent="echo", node="NODA1")
        texts = [f"reply **{n}**\n\n| a |\n|--:|\n| {n} |" for n in range(1203)]
        old_message.objects.bulk_create(
            old_message(chat=chat, role="agent", node="NODA1", status="delivered", text=text) for text in texts
        )
        too_big = old_message.objects.create(
            chat=chat, role="agent", node="NODA1", status="delivered", text=table(40_000, 10, cell="0.12345")
        )
        operator = old_message.objects.create(
            chat=chat, role="operator", node="NODA1", status="delivered", text="**mine**", operator_id=alice.user.pk
        )
        executor = MigrationExecutor(connection)
        executor.migrate(after)
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    rendered = Message.objects.filter(chat_id=chat.pk, role="agent").exclude(pk=too_big.pk).order_by("pk")
    assert rendered.count() == len(texts)
    assert [m.html for m in rendered] == [reply_html(text) for text in texts]
    assert '<td class="align-right">1202</td>' in rendered.last().html
    assert Message.objects.get(pk=too_big.pk).html == reply_html(too_big.text)
    assert Message.objects.get(pk=too_big.pk).html.startswith('<pre class="plain" data-hidden=')
    assert Message.objects.get(pk=operator.pk).html == ""
