"""The console as an operator's workspace, without script: the chat's settings, the reply's
footer, why a message failed, ask again and edit, export, message search, archived chats,
the recent chats beside the chat, and the error pages' ways out."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from django.test import Client

from audit.models import AuditEvent
from chats.failures import FAILURE_REASONS
from chats.models import Chat, Message
from nodes.errors import NODE_FAILURES
from sofiia.lib.env import RatePolicy

TEMPLATES = Path(__file__).resolve().parents[2] / "chats" / "templates"


@pytest.fixture
def console(alice):
    client = Client()
    assert client.login(username="alice", password=alice.password)
    return client


def in_ukrainian(client: Client) -> Client:
    client.post("/console/language", {"language": "uk", "next": "/console/"})
    return client


def composer_text(page: str) -> str:
    composer = page[page.index('id="composer"') :]
    return re.search(r'<textarea[^>]*name="text"[^>]*>\n?(.*?)</textarea>', composer, re.S).group(1)


def message_item(page: str, message_id: int) -> str:
    match = re.search(rf'<li id="m{message_id}" .*?</li>', page, re.S)
    assert match is not None, f"message {message_id} is not on the page"
    return match.group()


def settings_post(**fields: object) -> dict[str, object]:
    base = {"system_prompt": "", "model": "", "temperature": "", "max_tokens": "", "context_turns": "6"}
    return {**base, **fields}


# --- Chat settings ----------------------------------------------------------------------


def test_the_settings_form_saves_every_setting_with_one_change_event(alice, console):
    chat = alice.new_chat()
    response = console.post(
        f"/console/chats/{chat['id']}/settings",
        settings_post(system_prompt="Be brief.\r\nAnswer in Ukrainian.", model="sofiia-large", temperature="0.3",
                      max_tokens="512", context_turns="4"),
    )  # fmt: skip
    assert response.status_code == 302
    stored = Chat.objects.get(pk=chat["id"])
    assert (stored.system_prompt, stored.model, stored.temperature, stored.max_tokens, stored.context_turns) == (
        "Be brief.\nAnswer in Ukrainian.",
        "sofiia-large",
        0.3,
        512,
        4,
    )
    events = AuditEvent.objects.filter(action="chat.change", chat_id=chat["id"])
    assert events.count() == 1
    assert set(events.get().details["changes"]) == {
        "system_prompt",
        "model",
        "temperature",
        "max_tokens",
        "context_turns",
    }
    page = console.get(response["Location"]).content.decode()
    assert "Chat settings saved." in page
    assert 'value="sofiia-large"' in page


def test_settings_out_of_bounds_are_shown_next_to_their_fields_and_nothing_changes(alice, console):
    chat = alice.new_chat()
    response = console.post(
        f"/console/chats/{chat['id']}/settings", settings_post(temperature="2.5", max_tokens="0", context_turns="51")
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert '<details class="settings card" id="settings" open>' in page
    for field in ("temperature", "max_tokens", "context_turns"):
        assert re.search(rf'id="settings-{field}-error" role="alert">[^<]+</p>', page), field
    assert 'aria-invalid="true"' in page
    assert not AuditEvent.objects.filter(action="chat.change").exists()
    assert Chat.objects.get(pk=chat["id"]).temperature is None


def test_over_the_change_quota_the_settings_form_says_when_to_try_again(alice, console, settings):
    settings.SOFIIA_RATE_LIMIT_CHAT_CHANGE = RatePolicy(limit=1, window=60)
    chat = alice.new_chat()
    assert console.post(f"/console/chats/{chat['id']}/settings", settings_post(model="a")).status_code == 302
    response = console.post(f"/console/chats/{chat['id']}/settings", settings_post(model="b"))
    assert response.status_code == 429
    assert "Too many changes to chats" in response.content.decode()
    assert Chat.objects.get(pk=chat["id"]).model == "a"
    assert AuditEvent.objects.filter(action="chat.change", chat_id=chat["id"]).count() == 1


def test_the_settings_panel_suggests_the_nodes_models_and_takes_any(alice, console):
    chat = alice.new_chat()
    page = console.get(f"/console/chats/{chat['id']}/").content.decode()
    suggestions = re.search(r'<datalist id="model-suggestions">(.*?)</datalist>', page, re.S).group(1)
    assert '<option value="sofiia-small">' in suggestions
    assert 'list="model-suggestions"' in page
    response = console.post(f"/console/chats/{chat['id']}/settings", settings_post(model="not-listed-7b"))
    assert response.status_code == 302
    assert Chat.objects.get(pk=chat["id"]).model == "not-listed-7b"


# --- Replies and failures ---------------------------------------------------------------


def test_a_reply_shows_its_model_tokens_and_time_in_ukrainian(alice, console):
    chat = alice.new_chat()
    assert alice.send(chat["id"], "hello", key="k1").status_code == 201
    reply = Message.objects.get(chat_id=chat["id"], role="agent")
    Message.objects.filter(pk=reply.pk).update(model="sofiia-small", tokens_used=25, latency_ms=840)
    item = message_item(in_ukrainian(console).get(f"/console/chats/{chat['id']}/").content.decode(), reply.pk)
    assert '<span class="model">sofiia-small</span>' in item
    assert '<span class="tokens">25 токенів</span>' in item
    assert '<span class="latency">840 мс</span>' in item


@pytest.mark.parametrize("code", sorted(FAILURE_REASONS))
def test_a_failed_message_says_why_in_the_words_for_its_failure(alice, console, code):
    chat = alice.new_chat()
    message = Message.objects.create(
        chat_id=chat["id"], role="operator", text="hi", node="NODA1", status="failed", failure=code,
        operator=alice.user, idempotency_key="k-" + code, attempts=1,
    )  # fmt: skip
    item = message_item(console.get(f"/console/chats/{chat['id']}/").content.decode(), message.pk)
    assert f'<p class="failure" data-failure="{code}">{FAILURE_REASONS[code]}</p>'.replace("'", "&#x27;") in item


def test_every_node_failure_code_has_its_own_reason():
    assert set(FAILURE_REASONS) >= NODE_FAILURES
    assert len({str(reason) for reason in FAILURE_REASONS.values()}) == len(FAILURE_REASONS)


def test_a_send_the_node_answers_with_500_says_the_node_is_up_but_failed(alice, console):
    chat = alice.new_chat(agent="fail500")
    response = console.post(
        f"/console/chats/{chat['id']}/send", {"text": "hi", "idempotency_key": uuid.uuid4().hex}, follow=True
    )
    flash = re.search(r'<p class="flash error" role="alert">(.*?)</p>', response.content.decode()).group(1)
    assert flash.startswith("The node is up but answered with an error.")
    assert "press Retry when the node is back" not in flash
    message = Message.objects.get(chat_id=chat["id"])
    assert message.failure == "node_http_error"
    assert AuditEvent.objects.filter(action="message.send", chat_id=chat["id"], outcome="failed").exists()


# --- Ask again, edit and resend, copy, export -------------------------------------------


def test_ask_again_sends_the_last_message_again_as_a_new_one(alice, console):
    chat = alice.new_chat()
    assert alice.send(chat["id"], "first", key="k1").status_code == 201
    assert alice.send(chat["id"], "status of\nnode 2?", key="k2").status_code == 201
    page = console.get(f"/console/chats/{chat['id']}/").content.decode()
    assert page.count('class="inline again"') == 1
    last = Message.objects.get(idempotency_key="k2")
    form = re.search(r'<form[^>]*class="inline again">.*?</form>', message_item(page, last.pk), re.S).group()
    text = re.search(r'name="text" value="([^"]*)"', form).group(1)
    key = re.search(r'name="idempotency_key" value="([^"]*)"', form).group(1)
    assert key not in {"k1", "k2"}
    response = console.post(f"/console/chats/{chat['id']}/send", {"text": text, "idempotency_key": key})
    assert response.status_code == 302
    again = Message.objects.get(idempotency_key=key)
    assert (again.text, again.role) == ("status of\nnode 2?", "operator")
    assert AuditEvent.objects.filter(action="message.send", target_id=str(again.pk)).exists()


def test_edit_and_resend_fills_the_composer_with_the_message_and_a_new_key(alice, console):
    chat = alice.new_chat()
    assert alice.send(chat["id"], "draft <b>one</b>", key="k1").status_code == 201
    message = Message.objects.get(idempotency_key="k1")
    page = console.get(f"/console/chats/{chat['id']}/").content.decode()
    assert f'href="?edit={message.pk}#composer"' in page
    edited = console.get(f"/console/chats/{chat['id']}/?edit={message.pk}").content.decode()
    assert composer_text(edited) == "draft &lt;b&gt;one&lt;/b&gt;"
    composer = edited[edited.index('id="composer"') :]
    assert 'name="idempotency_key" value="k1"' not in composer


def test_edit_names_only_an_operator_message_of_this_chat(alice, bob, console):
    chat = alice.new_chat()
    other = bob.new_chat()
    assert bob.send(other["id"], "bob's secret", key="b1").status_code == 201
    foreign = Message.objects.get(idempotency_key="b1")
    page = console.get(f"/console/chats/{chat['id']}/?edit={foreign.pk}").content.decode()
    assert "bob&#x27;s secret" not in page
    assert console.get(f"/console/chats/{chat['id']}/?edit=x").status_code == 400


def test_the_chat_page_links_its_exports(alice, console):
    chat = alice.new_chat()
    assert alice.send(chat["id"], "hello", key="k1").status_code == 201
    page = console.get(f"/console/chats/{chat['id']}/").content.decode()
    # A message's Copy button is the script's (it copies only where a clipboard is): none in the HTML.
    assert "copy-message" not in page
    for fmt in ("md", "json"):
        link = f"/api/chats/{chat['id']}/export?format={fmt}"
        assert f'href="{link}"' in page
        assert console.get(link).status_code == 200
    assert AuditEvent.objects.filter(action="chat.export", chat_id=chat["id"]).count() == 2


# --- Search -----------------------------------------------------------------------------


def test_the_list_search_finds_titles_and_message_text_in_any_letter_case(alice, console):
    chat = alice.new_chat(title="Weekly")
    assert alice.send(chat["id"], "Олена asked about the backup", key="k1").status_code == 201
    page = console.get("/console/?q=олена").content.decode()
    hits = re.search(r'<section class="hits-box".*?</section>', page, re.S).group()
    message = Message.objects.get(idempotency_key="k1")
    assert f'href="/console/chats/{chat["id"]}/?at={message.pk}#m{message.pk}"' in hits
    assert "<mark>Олена</mark> asked about the backup" in hits
    assert "No chat has that in its title." in page


def test_the_search_page_pages_through_every_hit(alice, console):
    chat = alice.new_chat()
    for number in range(55):
        Message.objects.create(chat_id=chat["id"], role="operator", text=f"needle {number}", node="NODA1",
                               status="delivered", operator=alice.user)  # fmt: skip
    first = console.get("/console/search/?q=NEEDLE").content.decode()
    cursor = re.search(r'href="\?q=NEEDLE&amp;cursor=([^"]+)" id="older-hits"', first).group(1)
    second = console.get(f"/console/search/?q=NEEDLE&cursor={cursor}").content.decode()
    found = re.findall(r'<li data-message="(\d+)">', first) + re.findall(r'<li data-message="(\d+)">', second)
    assert sorted(map(int, found)) == sorted(Message.objects.values_list("pk", flat=True))
    assert console.get("/console/search/?q=needle&cursor=" + cursor).status_code == 400


def test_a_hit_opens_its_chat_around_the_message_found(alice, console):
    chat = alice.new_chat()
    ids = [
        Message.objects.create(chat_id=chat["id"], role="operator", text=f"line {n}", node="NODA1",
                               status="delivered", operator=alice.user).pk
        for n in range(100)
    ]  # fmt: skip
    found = ids[50]
    page = console.get(f"/console/chats/{chat['id']}/?at={found}").content.decode()
    shown = [int(pk) for pk in re.findall(r'<li id="m(\d+)"', page)]
    assert shown == ids[30:71]
    assert f'<li id="m{found}" class="msg operator delivered found"' in page
    assert 'aria-current="true"' in message_item(page, found)
    older = re.search(r'id="older" href="\?cursor=([^"]+)"', page).group(1)
    previous = console.get(f"/console/chats/{chat['id']}/?cursor={older}").content.decode()
    assert [int(pk) for pk in re.findall(r'<li id="m(\d+)"', previous)] == ids[0:30]
    assert 'id="newest"' in page
    assert 'data-live="0"' in page


def test_a_message_of_another_chat_is_not_found_there(alice, bob, console):
    chat = alice.new_chat()
    other = bob.new_chat()
    assert bob.send(other["id"], "secret", key="b1").status_code == 201
    foreign = Message.objects.get(idempotency_key="b1")
    assert console.get(f"/console/chats/{chat['id']}/?at={foreign.pk}").status_code == 404
    hits = console.get("/console/search/?q=secret").content.decode()
    assert re.findall(r"<li data-message=", hits) == []
    assert "No message contains that." in hits


# --- Archived chats, navigation, error pages ---------------------------------------------


def test_an_archived_chat_shows_it_with_restore_and_no_composer(alice, console):
    chat = alice.new_chat()
    assert alice.api.patch(f"/api/chats/{chat['id']}", {"archived": True}, format="json").status_code == 200
    page = console.get(f"/console/chats/{chat['id']}/").content.decode()
    assert 'id="archived-note"' in page
    assert 'id="restore"' in page
    assert 'id="composer"' not in page
    assert '<textarea name="text"' not in page
    response = console.post(
        f"/console/chats/{chat['id']}/send", {"text": "lost?", "idempotency_key": "a1"}, follow=True
    )
    assert "This chat is archived: restore it to send to it." in response.content.decode()
    assert not Message.objects.filter(chat_id=chat["id"]).exists()
    restored = console.post(f"/console/chats/{chat['id']}/archive", {}, follow=True).content.decode()
    assert 'id="composer"' in restored
    assert AuditEvent.objects.filter(action="chat.change", chat_id=chat["id"]).count() == 2


def test_the_chat_page_links_back_to_the_list_and_lists_recent_chats_beside(alice, bob, console):
    older = alice.new_chat(title="Older one")
    chat = alice.new_chat(title="Current")
    bob.new_chat(title="Bob's")
    page = console.get(f"/console/chats/{chat['id']}/").content.decode()
    assert '<a href="/console/" id="back-to-list">' in page
    sidebar = re.search(r'<nav class="sidebar" id="chat-sidebar".*?</nav>', page, re.S).group()
    assert f'<li data-chat="{chat["id"]}"><a href="/console/chats/{chat["id"]}/" aria-current="page">' in sidebar
    assert f'<li data-chat="{older["id"]}">' in sidebar
    assert "Bob" not in sidebar


def test_an_auditor_refused_by_the_console_is_sent_to_the_administration(auditor):
    client = Client()
    assert client.login(username=auditor.user.username, password=auditor.password)
    response = client.get("/console/")
    assert response.status_code == 403
    page = response.content.decode()
    assert '<a href="/admin/" id="error-back">' in page
    assert 'href="/console/" id="error-back"' not in page


def test_the_400_page_is_all_ukrainian(alice, console):
    chat = alice.new_chat()
    page = in_ukrainian(console).get(f"/console/chats/{chat['id']}/?cursor=x").content.decode()
    main = page.split("<main", 1)[1].split(">", 1)[1]
    assert "Хибний запит" in main
    assert re.search(r"[A-Za-z]{4,}", re.sub(r"<[^>]+>", " ", main).replace("Sofiia Console", "")) is None


def test_no_console_template_has_an_inline_style_or_handler():
    for template in TEMPLATES.rglob("*.html"):
        if "admin" in template.parts:
            continue
        text = template.read_text()
        assert re.search(r"\sstyle=", text) is None, template
        assert re.search(r"\son[a-z]+=", text) is None, template


@pytest.mark.parametrize("path", ["/console/?q=a%00b", "/console/search/?q=a%00b", "/console/search/?q=%00"])
def test_a_search_text_with_a_nul_is_a_400_on_every_console_search(alice, console, path):
    alice.new_chat(title="a chat")
    response = console.get(path)
    assert response.status_code == 400
    assert "NUL" in response.content.decode()
