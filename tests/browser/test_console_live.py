"""The console as an operator's live workspace, in Chromium: sends in flight, bursts, the live
list, unread counts, notifications, drafts, hidden tabs and the keyboard. Every test asserts
what the database stored."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import requests
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from audit.models import AuditEvent
from chats.models import Chat, Message
from sofiia.lib.clock import clock_now
from tests.browser.pages import (
    click,
    composer,
    log_in,
    mark_page,
    page_is_marked,
    send_button,
    status_line,
    texts,
    wait_for,
    wait_for_page,
    wait_for_text,
)
from tests.live import LiveConsole
from tests.personas import Persona, make_persona

# Every fetch the page makes, as [method, url], from before the page's own script runs.
RECORD_FETCHES = """
window.__fetches = [];
const original = window.fetch;
window.fetch = function (url, options) {
  window.__fetches.push([(options && options.method) || 'GET', String(url)]);
  return original.apply(this, arguments);
};
"""
# The Notification API as a page sees it, recording what it is asked; the answer to a request
# is "granted". Kept across the test's pages in sessionStorage.
FAKE_NOTIFICATION = """
class FakeNotification {
  constructor(title, options) {
    const notes = JSON.parse(sessionStorage.getItem('fake-notes') || '[]');
    notes.push([title, (options || {}).body]);
    sessionStorage.setItem('fake-notes', JSON.stringify(notes));
  }
  addEventListener() {}
  static get permission() { return sessionStorage.getItem('fake-permission') || 'default'; }
  static requestPermission() {
    sessionStorage.setItem('fake-asked', String(Number(sessionStorage.getItem('fake-asked') || 0) + 1));
    sessionStorage.setItem('fake-permission', 'granted');
    return Promise.resolve('granted');
  }
}
Object.defineProperty(window, 'Notification', {value: FakeNotification, configurable: true, writable: true});
"""


@pytest.fixture
def alice(db: None) -> Persona:
    return make_persona("alice")


@pytest.fixture
def on_every_page(browser: WebDriver) -> Iterator[Callable[[str], None]]:
    """Adds a script to run in every new document of the test before the page's own (the
    browser's ``Page.addScriptToEvaluateOnNewDocument``: not the page's, so no CSP applies)."""
    identifiers: list[str] = []

    def add(source: str) -> None:
        result = browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": source})  # type: ignore[attr-defined]
        identifiers.append(result["identifier"])

    yield add
    for identifier in identifiers:
        browser.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": identifier})  # type: ignore[attr-defined]


def shown(browser: WebDriver) -> int:
    """How many stored messages the chat page shows (counted in the page: hundreds of them)."""
    return int(browser.execute_script("return document.querySelectorAll('#messages li.msg[id]').length"))


def new_chat(alice: Persona, *, title: str = "Ops", agent: str = "echo") -> Chat:
    return Chat.objects.create(owner=alice.user, title=title, agent=agent, node="NODA1")


def open_chat(browser: WebDriver, server: LiveConsole, alice: Persona, chat: Chat) -> None:
    log_in(browser, server, alice, path=f"/console/chats/{chat.pk}/")
    wait_for_page(browser, f"/console/chats/{chat.pk}/", what="the chat page")


def fetched(browser: WebDriver, method: str, part: str) -> int:
    calls = browser.execute_script("return window.__fetches || []")
    return sum(1 for call_method, url in calls if call_method == method and part in url)


def api_send_later(
    server: LiveConsole, persona: Persona, chat: Chat, text: str, key: str | None = None
) -> threading.Thread:
    """Send through the API in a thread of its own: a slow agent's send is still in flight
    when this returns."""

    def send() -> None:
        server.session(persona.token).post(
            f"{server.base}/api/chats/{chat.pk}/send",
            json={"text": text},
            headers={"Idempotency-Key": key or uuid.uuid4().hex},
            timeout=30,
        )

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def wait_for_db(condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)  # polling the database another process writes: nothing to wait on


def draft_key(alice: Persona, chat: Chat) -> str:
    return f"sofiia:draft:{alice.user.pk}:{chat.pk}"


def test_a_send_in_flight_backs_off_on_409_and_its_reply_arrives_by_polling(
    browser, server, alice, nodes, on_every_page
):
    chat = new_chat(alice, agent="slow4")
    on_every_page(RECORD_FETCHES)
    open_chat(browser, server, alice, chat)
    # The same message on its way already (a worker that died mid-send leaves it so too).
    key = uuid.uuid4().hex
    browser.execute_script(
        "localStorage.setItem(arguments[0], JSON.stringify({text: 'in flight', key: arguments[1]}))",
        draft_key(alice, chat),
        key,
    )
    browser.refresh()
    wait_for(browser, lambda d: composer(d).get_attribute("value") == "in flight", what="the kept draft")
    thread = api_send_later(server, alice, chat, "in flight", key)
    wait_for_db(lambda: Message.objects.filter(chat=chat, idempotency_key=key).exists(), what="the pending message")
    send_button(browser).click()
    wait_for(
        browser,
        lambda d: "thinking…" in d.find_element(By.CSS_SELECTOR, "#messages li.operator.pending .meta").text,
        what="the message shown as pending, thinking",
    )
    wait_for_text(browser, "NODA1/slow4: in flight", timeout=10)
    thread.join(timeout=10)
    # One try, answered 409 with Retry-After: the page waited for the reply instead of asking again.
    assert fetched(browser, "POST", f"/api/chats/{chat.pk}/send") == 1
    (sent,) = Message.objects.filter(chat=chat, role="operator")
    assert sent.status == "delivered"
    assert len(nodes["NODA1"].calls_with("in flight")) == 1
    assert AuditEvent.objects.filter(action="message.send", chat_id=chat.pk).count() == 1
    assert not AuditEvent.objects.filter(action="ratelimit.block").exists()
    assert composer(browser).get_attribute("value") == ""
    assert status_line(browser) == ""


def test_a_burst_of_300_messages_neither_reloads_the_page_nor_loses_a_keystroke(browser, server, alice, nodes):
    chat = new_chat(alice)
    start = clock_now() - timedelta(hours=1)
    Message.objects.bulk_create(
        Message(
            chat=chat, role="agent", node="NODA1", status="delivered", text=f"old {n}", ts=start + timedelta(seconds=n)
        )
        for n in range(60)
    )
    open_chat(browser, server, alice, chat)
    mark_page(browser)
    box = composer(browser)
    typed = "a note typed during the burst, forty ch"
    box.send_keys(typed[:10])
    now = clock_now()
    Message.objects.bulk_create(
        Message(
            chat=chat,
            role="agent",
            node="NODA1",
            status="delivered",
            text=f"burst {n}",
            ts=now + timedelta(milliseconds=n),
        )
        for n in range(300)
    )
    for start_at in range(10, len(typed), 10):
        box.send_keys(typed[start_at : start_at + 10])
    wait_for(browser, lambda d: shown(d) == 350, timeout=15, what="the whole burst shown")
    assert texts(browser)[-1] == "burst 299"
    assert page_is_marked(browser), "the page reloaded"
    assert composer(browser).get_attribute("value") == typed
    assert browser.switch_to.active_element == composer(browser)
    click(browser, "#older")
    wait_for(browser, lambda d: shown(d) == 360, what="the oldest messages above")
    assert texts(browser)[:2] == ["old 0", "old 1"]
    assert page_is_marked(browser)
    assert Message.objects.filter(chat=chat).count() == 360


@pytest.mark.parametrize("width", [1366, 390])
def test_keystrokes_typed_right_after_enter_all_land(browser, server, alice, nodes, width):
    browser.set_window_size(width, 900 if width > 500 else 844)
    chat = new_chat(alice, agent="slow2")
    open_chat(browser, server, alice, chat)
    following = "typed while the first one goes"
    composer(browser).send_keys("first" + Keys.ENTER + following)
    assert composer(browser).get_attribute("value") == following
    wait_for_text(browser, "NODA1/slow2: first", timeout=10)
    assert composer(browser).get_attribute("value") == following
    (sent,) = Message.objects.filter(chat=chat, role="operator")
    assert (sent.text, sent.status) == ("first", "delivered")
    assert AuditEvent.objects.filter(action="message.send", chat_id=chat.pk, outcome="delivered").count() == 1


def test_a_whitespace_only_message_is_not_sent_and_the_operator_is_told(browser, server, alice, nodes, on_every_page):
    chat = new_chat(alice)
    on_every_page(RECORD_FETCHES)
    open_chat(browser, server, alice, chat)
    box = composer(browser)
    box.send_keys("   ")
    ActionChains(browser).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()
    box.send_keys("  " + Keys.ENTER)
    wait_for(browser, lambda d: "only spaces or line breaks" in status_line(d), what="the notice")
    assert composer(browser).get_attribute("value") == "   \n  "
    assert fetched(browser, "POST", "/send") == 0
    # In Ukrainian too.
    browser.find_element(By.CSS_SELECTOR, "button[name=language][value=uk]").click()
    wait_for(browser, lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "uk")
    composer(browser).send_keys(Keys.ENTER)
    wait_for(browser, lambda d: "лише з пробілів" in status_line(d), what="the notice in Ukrainian")
    assert not Message.objects.filter(chat=chat).exists()
    assert not AuditEvent.objects.filter(action="message.send").exists()


def test_the_session_expired_notice_leaves_once_logged_in_again_in_another_tab(browser, server, alice, nodes):
    from django.contrib.sessions.models import Session

    from tests.browser.pages import fill_login

    chat = new_chat(alice)
    open_chat(browser, server, alice, chat)
    first = browser.current_window_handle
    Session.objects.all().delete()
    wait_for(browser, lambda d: "session has expired" in status_line(d), what="the expired-session notice")
    browser.switch_to.new_window("tab")
    browser.get(f"{server.base}/console/login/")
    fill_login(browser, alice)
    wait_for_page(browser, "/console/", what="logged in again")
    browser.switch_to.window(first)
    wait_for(browser, lambda d: status_line(d) == "", what="the notice to leave")
    assert AuditEvent.objects.filter(action="auth.login", actor="alice").count() == 2


def test_the_chat_list_follows_badges_previews_and_unread_replies_live(browser, server, alice, nodes):
    chat = new_chat(alice, title="Status", agent="slow4")
    log_in(browser, server, alice)
    row = f'#chats li[data-chat="{chat.pk}"]'
    mark_page(browser)
    thread = api_send_later(server, alice, chat, "*how* is it going?")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f"{row} .badge.pending"), what="the pending badge")
    assert browser.find_element(By.CSS_SELECTOR, f"{row} .preview").text == "You: *how* is it going?"
    wait_for(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, f"{row} .badge.pending"), what="the badge to go")
    thread.join(timeout=10)
    assert browser.find_element(By.CSS_SELECTOR, f"{row} .preview").text == "NODA1/slow4: how is it going?"
    assert browser.find_element(By.CSS_SELECTOR, f"{row} .badge.unread").text == "1 unread"
    wait_for(browser, lambda d: d.title == "(1) Chats · Sofiia Console", what="the unread count in the title")
    assert page_is_marked(browser), "the list reloaded"
    # Opening the chat reads it: on the server, so every tab and browser agrees.
    click(browser, f"{row} a")
    wait_for_page(browser, f"/console/chats/{chat.pk}/")
    reply = Message.objects.get(chat=chat, role="agent")
    wait_for_db(lambda: Chat.objects.get(pk=chat.pk).last_read_at == reply.ts, what="the chat marked read")
    browser.back()
    wait_for_page(browser, "/console/")
    wait_for(browser, lambda d: d.title == "Chats · Sofiia Console", what="no unread count")
    assert not browser.find_elements(By.CSS_SELECTOR, f"{row} .badge.unread")
    assert AuditEvent.objects.filter(action="message.send", chat_id=chat.pk, outcome="delivered").count() == 1


def test_a_desktop_notification_comes_only_after_the_operator_opts_in(browser, server, alice, nodes, on_every_page):
    on_every_page(FAKE_NOTIFICATION)
    other = new_chat(alice, title="Elsewhere")
    here = new_chat(alice, title="Here")
    Message.objects.create(chat=other, role="agent", node="NODA1", status="delivered", text="waiting")
    log_in(browser, server, alice)
    button = browser.find_element(By.ID, "notify")
    assert button.text == "Notify me of replies"
    assert browser.execute_script("return sessionStorage.getItem('fake-asked')") is None
    button.click()
    wait_for(browser, lambda d: d.find_element(By.ID, "notify").text == "Notifications on", what="opted in")
    browser.get(f"{server.base}/console/chats/{here.pk}/")
    wait_for(browser, lambda d: d.title.startswith("(1) "), timeout=10, what="the other chat's unread reply counted")
    api_send_later(server, alice, other, "ping").join(timeout=10)
    wait_for(browser, lambda d: d.title.startswith("(2) "), timeout=10, what="the new reply counted")
    notes = browser.execute_script("return JSON.parse(sessionStorage.getItem('fake-notes'))")
    assert notes == [["Reply in “Elsewhere”", "NODA1/echo: ping"]]
    assert browser.execute_script("return sessionStorage.getItem('fake-asked')") == "1"
    assert AuditEvent.objects.filter(action="message.send", chat_id=other.pk, outcome="delivered").count() == 1


def test_two_overlapping_sends_each_reply_follows_its_question(browser, server, alice, nodes):
    chat = new_chat(alice, agent="slow3")
    open_chat(browser, server, alice, chat)
    composer(browser).send_keys("question one" + Keys.ENTER + "question two" + Keys.ENTER)
    # Each waiting send counts its seconds up.
    wait_for(browser, lambda d: "thinking… 1 s" in d.find_element(By.CSS_SELECTOR, "#messages li.operator").text)
    wait_for(browser, lambda d: "thinking… 2 s" in d.find_element(By.CSS_SELECTOR, "#messages li.operator").text)
    wait_for(browser, lambda d: len(texts(d)) == 4, timeout=10, what="both replies")
    assert texts(browser) == ["question one", "NODA1/slow3: question one", "question two", "NODA1/slow3: question two"]
    assert not browser.find_elements(By.CSS_SELECTOR, "#messages .thinking")
    sent = list(Message.objects.filter(chat=chat, role="operator").order_by("ts"))
    assert [m.text for m in sent] == ["question one", "question two"]
    assert all(Message.objects.filter(reply_to=m).count() == 1 for m in sent)
    assert AuditEvent.objects.filter(action="message.send", chat_id=chat.pk, outcome="delivered").count() == 2


def test_a_draft_survives_closing_the_tab_and_leaves_on_send_and_logout(browser, server, alice, nodes):
    chat = new_chat(alice)
    open_chat(browser, server, alice, chat)
    composer(browser).send_keys("kept across tabs")
    closed = browser.current_window_handle
    browser.switch_to.new_window("tab")
    fresh = browser.current_window_handle
    browser.switch_to.window(closed)
    browser.close()
    browser.switch_to.window(fresh)
    browser.get(f"{server.base}/console/chats/{chat.pk}/")
    wait_for(browser, lambda d: composer(d).get_attribute("value") == "kept across tabs", what="the draft back")
    assert browser.switch_to.active_element == composer(browser)
    send_button(browser).click()
    wait_for_text(browser, "NODA1/echo: kept across tabs")
    assert browser.execute_script("return localStorage.getItem(arguments[0])", draft_key(alice, chat)) is None
    composer(browser).send_keys("never sent")
    assert browser.execute_script("return localStorage.getItem(arguments[0])", draft_key(alice, chat))
    browser.find_element(By.CSS_SELECTOR, "#logout button").click()
    wait_for_page(browser, lambda url: "/console/login/" in url, what="the login page")
    kept = browser.execute_script("return Object.keys(localStorage).filter(k => k.startsWith('sofiia:'))")
    assert kept == []
    assert Message.objects.filter(chat=chat, role="operator").count() == 1
    assert AuditEvent.objects.filter(action="auth.logout", actor="alice").count() == 1


def test_polling_rests_while_the_tab_is_hidden_and_resumes_at_once(browser, server, alice, nodes, on_every_page):
    chat = new_chat(alice)
    on_every_page(RECORD_FETCHES)
    open_chat(browser, server, alice, chat)
    browser.execute_script(
        "Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});"
        "Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});"
        "document.dispatchEvent(new Event('visibilitychange')); window.__fetches.length = 0;"
    )
    api_send_later(server, alice, chat, "while away").join(timeout=10)
    # Wall time is the subject: a visible page polls every 2 s; a hidden one rests.
    time.sleep(4)
    assert fetched(browser, "GET", "updates") == 0
    assert "while away" not in texts(browser)
    browser.execute_script(
        "delete document.hidden; delete document.visibilityState;document.dispatchEvent(new Event('visibilitychange'));"
    )
    wait_for_text(browser, "NODA1/echo: while away", timeout=1.5)
    assert AuditEvent.objects.filter(action="message.send", chat_id=chat.pk).count() == 1


def test_keyboard_shortcuts_and_the_composer_focused_on_opening_a_chat(browser, server, alice, nodes):
    chat = new_chat(alice)
    log_in(browser, server, alice)

    def active_id() -> str:
        return browser.switch_to.active_element.get_attribute("id") or ""

    keys = ActionChains(browser)
    keys.send_keys("/").perform()
    assert active_id() == "q"
    ActionChains(browser).send_keys("n/").perform()
    assert browser.find_element(By.ID, "q").get_attribute("value") == "n/"
    ActionChains(browser).send_keys(Keys.ESCAPE).perform()
    assert active_id() != "q"
    ActionChains(browser).send_keys("n").perform()
    assert active_id() == "id_title"
    ActionChains(browser).send_keys("?" + Keys.ESCAPE + "?").perform()
    assert browser.find_element(By.ID, "id_title").get_attribute("value") == "?"
    ActionChains(browser).send_keys(Keys.ESCAPE + "?").perform()
    dialog = browser.find_element(By.ID, "shortcuts")
    assert dialog.get_attribute("open") is not None
    assert "Search chats" in dialog.text
    ActionChains(browser).send_keys(Keys.ESCAPE).perform()
    assert dialog.get_attribute("open") is None
    browser.get(f"{server.base}/console/chats/{chat.pk}/")
    wait_for_page(browser, f"/console/chats/{chat.pk}/")
    assert browser.switch_to.active_element == composer(browser)
    ActionChains(browser).send_keys("/n?").perform()
    assert composer(browser).get_attribute("value") == "/n?"
    ActionChains(browser).send_keys(Keys.ESCAPE + "/").perform()
    wait_for_page(browser, "/console/", what="the list, to search")
    assert active_id() == "q"
    assert not Message.objects.filter(chat=chat).exists()


def test_the_chat_page_weighs_under_60_kb(browser, server, alice, nodes):
    chat = new_chat(alice)
    Message.objects.bulk_create(
        Message(
            chat=chat,
            role="agent" if n % 2 else "operator",
            node="NODA1",
            status="delivered",
            text=f"a reply with `code` and **bold** text, number {n}" if n % 2 else f"a question, number {n}",
            ts=clock_now() - timedelta(seconds=100 - n),
        )
        for n in range(50)
    )
    open_chat(browser, server, alice, chat)
    cookies = {cookie["name"]: cookie["value"] for cookie in browser.get_cookies()}
    page = requests.get(f"{server.base}/console/chats/{chat.pk}/", cookies=cookies, timeout=10)
    assert page.status_code == 200
    assets = [
        element.get_attribute(attribute)
        for element, attribute in [(browser.find_element(By.CSS_SELECTOR, "script[src]"), "src")]
        + [(link, "href") for link in browser.find_elements(By.CSS_SELECTOR, "link[rel=stylesheet]")]
    ]
    weight = len(page.content) + sum(len(requests.get(url, timeout=10).content) for url in assets)
    assert weight < 60_000, f"the chat page weighs {weight} bytes"


# The clipboard as a page sees it, recording what it is given.
FAKE_CLIPBOARD = """
window.__copied = [];
Object.defineProperty(navigator, 'clipboard', {value: {writeText: function (text) {
  window.__copied.push(text); return Promise.resolve();
}}});
"""


def test_every_message_can_be_copied_whole(browser, server, alice, nodes):
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": FAKE_CLIPBOARD})
    chat = new_chat(alice)
    question = Message.objects.create(
        chat=chat, role="operator", node="NODA1", status="delivered", text="line one\nline two", operator=alice.user
    )
    Message.objects.create(
        chat=chat, role="agent", node="NODA1", status="delivered", text="the answer", html="<p>the answer</p>",
        reply_to=question,
    )  # fmt: skip
    open_chat(browser, server, alice, chat)
    buttons = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "li.msg .copy-message"), what="copy buttons")
    assert len(buttons) == 2
    for button in buttons:
        button.click()
    wait_for(browser, lambda d: len(d.execute_script("return window.__copied")) == 2, what="both copied")
    assert browser.execute_script("return window.__copied") == ["line one\nline two", "the answer"]


def test_edit_and_resend_fills_the_composer_even_over_a_kept_draft(browser, server, alice, nodes):
    chat = new_chat(alice)
    open_chat(browser, server, alice, chat)
    composer(browser).send_keys("first question")
    composer(browser).send_keys(Keys.ENTER)
    wait_for(browser, lambda d: Message.objects.filter(chat=chat, role="agent").exists(), what="the reply")
    composer(browser).send_keys("a draft kept in this browser")
    question = Message.objects.get(chat=chat, role="operator")
    browser.get(f"{server.base}/console/chats/{chat.pk}/?edit={question.pk}#composer")
    wait_for(browser, lambda d: composer(d).get_attribute("value") == "first question", what="the message to edit")
    composer(browser).send_keys(" (again)")
    composer(browser).send_keys(Keys.ENTER)
    wait_for(browser, lambda d: Message.objects.filter(chat=chat, role="operator").count() == 2, what="the resend")
    assert Message.objects.filter(chat=chat, role="operator").latest("id").text == "first question (again)"
