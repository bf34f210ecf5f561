"""The console's pages and the endpoints its script reads: headers, errors, drafts kept by the
form, live updates, older pages, Markdown, languages."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.test import Client

from audit.models import AuditEvent
from chats.markdown import reply_html
from chats.models import Chat, Message
from chats.views import POLL_LOOKBACK
from sofiia.lib.clock import clock_now


@pytest.fixture
def console(alice):
    client = Client()
    assert client.login(username="alice", password=alice.password)
    return client


def composer_of(page: str) -> tuple[str, str]:
    """The composer's text and key as the page renders them."""
    page = page[page.index('id="composer"') :]
    text = re.search(r'<textarea[^>]*name="text"[^>]*>\n?(.*?)</textarea>', page, re.S).group(1)
    key = re.search(r'name="idempotency_key" value="([^"]*)"', page).group(1)
    return text, key


def test_console_pages_are_never_stored_and_carry_a_strict_csp(alice, console):
    chat = alice.new_chat()
    for path in ("/console/", f"/console/chats/{chat['id']}/", "/console/login/"):
        response = console.get(path)
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy
        assert "style-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert "unsafe-eval" not in policy
        assert "no-store" in response["Cache-Control"]
    assert "no-store" in console.get(f"/console/chats/{chat['id']}/updates").headers["Cache-Control"]


def test_the_admin_carries_the_consoles_policy_and_json_answers_none(auditor, alice):
    assert "script-src 'self'" in auditor.admin.get("/admin/")["Content-Security-Policy"]
    assert "Content-Security-Policy" not in alice.api.get("/api/chats")


def test_console_pages_have_no_inline_script_or_style(alice, console):
    chat = alice.new_chat()
    alice.send(chat["id"], "hi", key="k")
    for path in ("/console/", f"/console/chats/{chat['id']}/", "/console/login/", "/console/chats/999999/"):
        page = console.get(path).content.decode()
        assert " style=" not in page
        assert not re.search(r" on[a-z]+=", page)
        for script in re.findall(r"<script([^>]*)>", page):
            assert "src=" in script or 'type="application/json"' in script


@pytest.mark.parametrize("query", ["cursor=x", "cursor=" + "A" * 300, "cursor=%00"])
def test_a_malformed_cursor_is_a_400_page_in_the_console_look(alice, console, query):
    chat = alice.new_chat()
    for path in ("/console/", f"/console/chats/{chat['id']}/"):
        response = console.get(f"{path}?{query}")
        assert response.status_code == 400
        page = response.content.decode()
        assert "Bad request" in page
        assert re.search(r"/static/console/console(\.[0-9a-f]{12})?\.css", page)
    for path in (f"/console/chats/{chat['id']}/updates", f"/console/chats/{chat['id']}/older"):
        response = console.get(f"{path}?{query}")
        assert (response.status_code, response.json()["error"]) == (400, "invalid_cursor")


def test_an_unknown_page_is_a_404_in_the_console_look(console):
    response = console.get("/console/chats/123456/")
    assert response.status_code == 404
    assert "There is no such page" in response.content.decode()
    assert "Content-Security-Policy" in response


def test_the_api_still_answers_errors_in_json(alice):
    response = alice.api.get("/api/chats?cursor=x")
    assert (response.status_code, response.json()["error"]) == (400, "invalid_cursor")
    assert alice.api.get("/api/nope").json()["error"] == "not_found"


def test_a_csrf_failure_is_a_page_in_the_console_look(alice):
    chat = alice.new_chat()
    client = Client(enforce_csrf_checks=True)
    client.login(username="alice", password=alice.password)
    response = client.post(f"/console/chats/{chat['id']}/send", {"text": "x", "idempotency_key": "k"})
    assert response.status_code == 403
    assert "This form has expired" in response.content.decode()
    assert not Message.objects.exists()


def test_the_favicon_is_served(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    assert re.search(r"/console/favicon(\.[0-9a-f]{12})?\.svg$", response["Location"])


def test_a_refused_form_send_keeps_the_draft_and_its_key(alice, console, settings):
    chat = alice.new_chat()
    too_long = "y" * 16001
    response = console.post(
        f"/console/chats/{chat['id']}/send", {"text": too_long, "idempotency_key": "draft-key"}, follow=True
    )
    page = response.content.decode()
    assert "Your draft is kept." in page
    assert composer_of(page) == (too_long, "draft-key")
    # Kept for one rendering only: the next page has a fresh composer.
    text, key = composer_of(console.get(f"/console/chats/{chat['id']}/").content.decode())
    assert (text, key != "draft-key") == ("", True)
    assert not Message.objects.exists()


def test_a_form_send_over_the_rate_limit_keeps_the_draft(alice, console, settings):
    from sofiia.lib.env import parse_rate

    settings.SOFIIA_RATE_LIMIT_CHAT = parse_rate("SOFIIA_RATE_LIMIT_CHAT", "1/60")
    chat = alice.new_chat()
    assert alice.send(chat["id"], "first", key="k1").status_code == 201
    page = console.post(
        f"/console/chats/{chat['id']}/send", {"text": "second", "idempotency_key": "k2"}, follow=True
    ).content.decode()
    assert "Too many sends. You can send again in" in page
    assert composer_of(page) == ("second", "k2")
    assert AuditEvent.objects.filter(action="ratelimit.block", chat_id=chat["id"]).count() == 1
    assert Message.objects.filter(role="operator").count() == 1


def test_an_expired_session_send_logs_in_back_to_the_chat_with_the_draft(alice):
    chat = alice.new_chat()
    client = Client()
    response = client.post(f"/console/chats/{chat['id']}/send", {"text": "kept\r\nfor later", "idempotency_key": "k9"})
    assert response.status_code == 302
    assert response["Location"] == f"/console/login/?next=/console/chats/{chat['id']}/"
    login = client.post(
        "/console/login/",
        {"username": "alice", "password": alice.password, "next": f"/console/chats/{chat['id']}/"},
    )
    assert login["Location"] == f"/console/chats/{chat['id']}/"
    page = client.get(login["Location"]).content.decode()
    assert composer_of(page) == ("kept\r\nfor later", "k9")
    assert not Message.objects.exists()
    assert AuditEvent.objects.filter(action="auth.login", actor="alice").count() == 1


def test_form_sends_store_line_breaks_as_the_api_does(alice, console, nodes):
    chat = alice.new_chat()
    console.post(f"/console/chats/{chat['id']}/send", {"text": "a\r\n  b", "idempotency_key": "k"})
    assert Message.objects.get(role="operator").text == "a\n  b"
    # A retry of the same message from the API with its key is the same message.
    replay = alice.send(chat["id"], "a\n  b", key="k")
    assert (replay.status_code, replay["Idempotent-Replayed"]) == (201, "true")
    assert Message.objects.filter(role="operator").count() == 1


def test_a_pending_message_past_its_lease_offers_a_retry(alice, console, clock, nodes):
    chat = alice.new_chat()
    stuck = Message.objects.create(
        chat_id=chat["id"], role="operator", text="stuck", node="NODA1", status="pending", operator=alice.user,
        idempotency_key="lost-worker", attempts=1, delivery_started_at=clock_now(),
    )  # fmt: skip
    page = console.get(f"/console/chats/{chat['id']}/").content.decode()
    assert "Retry delivery" not in page
    clock(3600)
    page = console.get(f"/console/chats/{chat['id']}/").content.decode()
    assert "Retry delivery" in page
    console.post(f"/console/chats/{chat['id']}/send", {"text": "stuck", "idempotency_key": "lost-worker"})
    stuck.refresh_from_db()
    assert (stuck.status, stuck.attempts) == ("delivered", 2)
    assert len(nodes["NODA1"].calls_with("stuck")) == 1
    event = AuditEvent.objects.get(action="message.send")
    assert (event.outcome, event.details["attempt"]) == ("delivered", 2)


def test_replies_are_markdown_without_raw_html_and_operator_text_is_plain(alice, console):
    chat = alice.new_chat()
    text = '**bold** <script>alert(1)</script>\n```json\n{\n  "a": 1\n}\n```\n[x](javascript:alert(1)) ![i](http://e/i.png)'
    # Rendered as the send path renders a reply it stores.
    Message.objects.create(
        chat_id=chat["id"], role="agent", node="NODA1", status="delivered", text=text, html=reply_html(text)
    )
    Message.objects.create(
        chat_id=chat["id"], role="operator", node="NODA1", status="delivered", text="**not bold** <b>x</b>"
    )
    page = console.get(f"/console/chats/{chat['id']}/").content.decode()
    assert "<strong>bold</strong> &lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert '<div class="code"><pre><code class="language-json">{\n  &quot;a&quot;: 1\n}\n</code></pre>' in page
    assert 'href="javascript' not in page
    assert "<img" not in page
    assert '<div class="text plain">**not bold** &lt;b&gt;x&lt;/b&gt;</div>' in page


def test_times_carry_the_date_and_utc(alice, console):
    chat = alice.new_chat()
    alice.send(chat["id"], "when", key="k")
    message = Message.objects.get(role="operator")
    page = console.get(f"/console/chats/{chat['id']}/").content.decode()
    iso = message.ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{message.ts.microsecond // 1000:03d}Z"
    assert f'<time datetime="{iso}">{message.ts:%Y-%m-%d %H:%M} UTC</time>' in page


def seed(chat_id: int, count: int) -> list[Message]:
    start = clock_now() - timedelta(hours=1)
    return Message.objects.bulk_create(
        Message(chat_id=chat_id, role="agent", node="NODA1", status="delivered", text=f"seeded {n}",
                ts=start + timedelta(seconds=n))
        for n in range(count)
    )  # fmt: skip


def ids_in(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<li id="m(\d+)"', html)]


def test_the_chat_opens_at_the_newest_page_and_older_pages_load_in_order(alice, console):
    chat = alice.new_chat()
    seeded = seed(chat["id"], 120)
    page = console.get(f"/console/chats/{chat['id']}/").content.decode()
    assert ids_in(page) == [m.pk for m in seeded[70:]]
    cursor = re.search(r'id="older" href="\?cursor=[^"]+" data-cursor="([^"]+)"', page).group(1)
    older = console.get(f"/console/chats/{chat['id']}/older", {"cursor": cursor}).json()
    assert ids_in(older["html"]) == [m.pk for m in seeded[20:70]]
    oldest = console.get(f"/console/chats/{chat['id']}/older", {"cursor": older["next_cursor"]}).json()
    assert ids_in(oldest["html"]) == [m.pk for m in seeded[:20]]
    assert oldest["next_cursor"] is None
    # Without the script the link opens the older page, which leads back to the newest.
    no_script = console.get(f"/console/chats/{chat['id']}/", {"cursor": cursor}).content.decode()
    assert ids_in(no_script) == [m.pk for m in seeded[20:70]]
    assert "Newest messages" in no_script
    assert 'data-live="0"' in no_script


def test_updates_bring_new_messages_and_the_state_of_watched_ones(alice, console, nodes):
    chat = alice.new_chat()
    seed(chat["id"], 3)
    page = console.get(f"/console/chats/{chat['id']}/").content.decode()
    cursor = re.search(r'data-cursor="([^"]+)"', page).group(1)
    assert alice.send(chat["id"], "new one", key="k1").status_code == 201
    body = console.get(f"/console/chats/{chat['id']}/updates", {"cursor": cursor}).json()
    reply, sent = Message.objects.filter(chat_id=chat["id"]).order_by("-id")[:2]
    assert ids_in(body["html"])[-2:] == [sent.pk, reply.pk]
    assert body["node_status"] == "up"
    assert body["more"] is False
    # Polling on from the new cursor, nothing is rendered again: the recent ones' ids come, for
    # the page to ask for any it misses (committed late).
    again = console.get(f"/console/chats/{chat['id']}/updates", {"cursor": body["cursor"]}).json()
    assert ids_in(again["html"]) == []
    assert again["recent"][:2] == [reply.pk, sent.pk]
    # A watched message outside the lookback comes back with its current state.
    stale = Message.objects.create(
        chat_id=chat["id"], role="operator", text="old", node="NODA1", status="failed", operator=alice.user,
        idempotency_key="old", ts=clock_now() - POLL_LOOKBACK * 3,
    )  # fmt: skip
    watched = console.get(
        f"/console/chats/{chat['id']}/updates", {"cursor": again["cursor"], "watch": str(stale.pk)}
    ).json()
    assert stale.pk in ids_in(watched["html"])
    assert f'<li id="m{stale.pk}" class="msg operator failed" data-state="f0r"' in watched["html"]


def test_updates_of_an_empty_chat_start_from_the_beginning(alice, console):
    chat = alice.new_chat()
    assert console.get(f"/console/chats/{chat['id']}/updates").json()["html"].strip() == ""
    alice.send(chat["id"], "first", key="k")
    body = console.get(f"/console/chats/{chat['id']}/updates").json()
    assert len(ids_in(body["html"])) == 2
    assert body["cursor"]


@pytest.mark.parametrize("watch", ["x", "1,,2;", ",".join(["1"] * 51), "9" * 19])
def test_a_bad_watch_list_is_refused(alice, console, watch):
    chat = alice.new_chat()
    response = console.get(f"/console/chats/{chat['id']}/updates", {"watch": watch})
    assert (response.status_code, response.json()["error"]) == (400, "invalid_watch")


def test_another_operators_chat_has_no_updates_or_older_pages(alice, bob):
    chat = alice.new_chat()
    client = Client()
    client.login(username="bob", password=bob.password)
    assert client.get(f"/console/chats/{chat['id']}/updates").status_code == 404
    assert client.get(f"/console/chats/{chat['id']}/older").status_code == 404


def test_the_console_speaks_the_browsers_language_and_the_switcher_keeps_a_choice(alice):
    client = Client(HTTP_ACCEPT_LANGUAGE="uk,en;q=0.5")
    client.login(username="alice", password=alice.password)
    chat = alice.new_chat(title="Hello chat")
    alice.send(chat["id"], "Hello, agent", key="k")
    page = client.get(f"/console/chats/{chat['id']}/").content.decode()
    assert '<html lang="uk">' in page
    assert "Надіслати" in page
    assert "Вийти" in page
    # Messages and titles are never translated.
    assert "Hello, agent" in page
    assert "NODA1/echo: Hello, agent" in page
    assert "Hello chat" in page
    switched = client.post("/console/language", {"language": "en", "next": f"/console/chats/{chat['id']}/"})
    assert switched["Location"] == f"/console/chats/{chat['id']}/"
    page = client.get(f"/console/chats/{chat['id']}/").content.decode()
    assert '<html lang="en">' in page
    assert "Send" in page


def test_the_api_is_never_translated(alice):
    response = alice.api.post("/api/chats", {"title": ""}, format="json", HTTP_ACCEPT_LANGUAGE="uk")
    assert response.status_code == 400
    assert response.json()["detail"] == "title: This field may not be blank."
    assert "Content-Language" not in response


def test_logout_tells_the_browser_to_drop_its_cache(console):
    response = console.post("/console/logout/")
    assert response["Clear-Site-Data"] == '"cache"'
    event = AuditEvent.objects.get(action="auth.logout")
    assert event.actor == "alice"


def test_a_chat_page_shows_its_nodes_health(alice, console, settings):
    chat = alice.new_chat()
    page = console.get(f"/console/chats/{chat['id']}/").content.decode()
    assert 'id="node-status" data-node="NODA1" data-status="up"' in page
    from django.core.cache import cache

    cache.clear()
    settings.SOFIIA_NODES = {**settings.SOFIIA_NODES, "NODA1": "http://127.0.0.1:9"}
    page = console.get(f"/console/chats/{chat['id']}/").content.decode()
    assert 'data-status="down"' in page
    assert "Node NODA1 is down" in page
    assert Chat.objects.count() == 1


def test_sending_stays_exactly_once_across_the_form_and_the_api(alice, console, nodes):
    chat = alice.new_chat()
    key = uuid.uuid4().hex
    console.post(f"/console/chats/{chat['id']}/send", {"text": "both ways", "idempotency_key": key})
    assert alice.send(chat["id"], "both ways", key=key)["Idempotent-Replayed"] == "true"
    assert len(nodes["NODA1"].calls_with("both ways")) == 1
    assert AuditEvent.objects.filter(action="message.send").count() == 1
    assert AuditEvent.objects.filter(action="message.replay").count() == 1
