"""The console as an operator uses it, in Chromium: every test asserts what the database stored."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.expected_conditions import staleness_of

from audit.models import AuditEvent
from chats.models import Chat, Message
from tests.browser.pages import (
    api_send,
    click,
    composer,
    fill_login,
    log_in,
    mark_page,
    page_is_marked,
    send_button,
    send_in_flight,
    status_line,
    texts,
    wait_for,
    wait_for_page,
    wait_for_text,
)
from tests.personas import make_persona


@pytest.fixture
def alice(db: None):
    return make_persona("alice")


def open_chat(browser, server, alice, *, title: str = "Ops", agent: str = "echo", node: str = "NODA1") -> Chat:
    """Log in and create a chat through the console's form; the browser is left on the chat."""
    log_in(browser, server, alice)
    browser.find_element(By.NAME, "title").send_keys(title)
    browser.find_element(By.NAME, "agent").send_keys(agent)
    browser.find_element(By.CSS_SELECTOR, f"select[name=node] option[value={node}]").click()
    browser.find_element(By.CSS_SELECTOR, "form.new-chat button[type=submit]").click()
    wait_for_page(browser, lambda url: "/console/chats/" in url, what="the new chat's page")
    return Chat.objects.get(title=title)


def operator_messages(chat: Chat, text: str) -> list[Message]:
    return list(Message.objects.filter(chat=chat, role="operator", text=text))


def test_an_operator_logs_in_creates_a_chat_and_sees_the_reply_without_a_reload(browser, server, alice, nodes):
    chat = open_chat(browser, server, alice, node="NODA2")
    assert AuditEvent.objects.filter(action="chat.create", chat_id=chat.pk, actor="alice").count() == 1
    mark_page(browser)
    box = composer(browser)
    box.send_keys("hello    world")
    ActionChains(browser).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()
    box.send_keys("    indented")
    send_button(browser).click()
    wait_for_text(browser, "NODA2/echo: hello")
    assert page_is_marked(browser), "the page reloaded"
    assert composer(browser).get_attribute("value") == ""
    (sent,) = operator_messages(chat, "hello    world\n    indented")
    assert sent.status == "delivered"
    assert Message.objects.filter(chat=chat, role="agent", reply_to=sent).count() == 1
    assert AuditEvent.objects.filter(action="message.send", outcome="delivered", target_id=str(sent.pk)).count() == 1
    assert len(nodes["NODA2"].calls_with("hello    world\n    indented")) == 1
    # Whitespace is kept as typed; the time carries its date and the operator's zone, UTC on hover.
    shown = browser.find_element(By.CSS_SELECTOR, f"#m{sent.pk} .text").text
    assert shown == "hello    world\n    indented"
    stamp = browser.find_element(By.CSS_SELECTOR, f"#m{sent.pk} time")
    assert stamp.get_attribute("title").endswith("UTC")
    assert sent.ts.strftime("%Y") in stamp.text


def test_a_double_click_on_send_stores_one_message(browser, server, alice, nodes):
    chat = open_chat(browser, server, alice, agent="slow1")
    composer(browser).send_keys("double")
    ActionChains(browser).double_click(send_button(browser)).perform()
    send_button(browser).click()
    wait_for_text(browser, "NODA1/slow1: double")
    assert len(operator_messages(chat, "double")) == 1
    assert len(nodes["NODA1"].calls_with("double")) == 1
    assert AuditEvent.objects.filter(action="message.send", chat_id=chat.pk).count() == 1


def test_enter_sends_and_holding_it_down_stores_one_message(browser, server, alice, nodes):
    chat = open_chat(browser, server, alice, agent="slow1")
    composer(browser).send_keys("held" + Keys.ENTER * 8)
    wait_for_text(browser, "NODA1/slow1: held")
    wait_for(browser, lambda d: not send_in_flight(d), what="the send to be answered")
    composer(browser).send_keys(Keys.ENTER * 3)  # an empty composer sends nothing
    assert not send_in_flight(browser)
    assert len(operator_messages(chat, "held")) == 1
    assert Message.objects.filter(chat=chat, role="operator").count() == 1
    assert len(nodes["NODA1"].calls_with("held")) == 1
    assert AuditEvent.objects.filter(action="message.send", chat_id=chat.pk).count() == 1


def test_back_then_send_stores_one_message(browser, server, alice, nodes):
    chat = open_chat(browser, server, alice)
    composer(browser).send_keys("once")
    send_button(browser).click()
    wait_for_text(browser, "NODA1/echo: once")
    browser.back()
    wait_for_page(browser, lambda url: "/console/chats/" not in url, what="Back to leave the chat")
    browser.forward()
    wait_for(browser, lambda d: d.find_elements(By.ID, "composer"), what="the chat again")
    assert composer(browser).get_attribute("value") == ""
    wait_for(browser, lambda d: not send_in_flight(d), what="the chat to be idle")
    send_button(browser).click()
    composer(browser).send_keys(Keys.ENTER)
    assert not send_in_flight(browser)  # neither the click nor the key started a send
    assert len(operator_messages(chat, "once")) == 1
    assert len(nodes["NODA1"].calls_with("once")) == 1
    assert AuditEvent.objects.filter(action="message.send", chat_id=chat.pk).count() == 1


def test_a_reload_while_sending_stores_one_message(browser, server, alice, nodes):
    chat = open_chat(browser, server, alice, agent="slow2")
    composer(browser).send_keys("reloaded")
    send_button(browser).click()
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "li.bubble"), what="the in-flight bubble")
    browser.refresh()
    # Whatever the page shows after the reload, pressing Send again cannot make a second message.
    send_button(browser).click()
    wait_for_text(browser, "NODA1/slow2: reloaded", timeout=15)
    assert composer(browser).get_attribute("value") == ""
    (sent,) = operator_messages(chat, "reloaded")
    assert sent.status == "delivered"
    assert len(nodes["NODA1"].calls_with("reloaded")) == 1
    assert AuditEvent.objects.filter(action="message.send", chat_id=chat.pk, outcome="delivered").count() == 1


def test_over_the_rate_limit_the_countdown_shows_and_the_draft_stays(browser, server, alice, nodes):
    chat = open_chat(browser, server, alice)
    for number in range(4):
        assert api_send(server, alice, chat.pk, f"burst {number}").status_code == 201
    composer(browser).send_keys("one too many")
    send_button(browser).click()
    wait_for(browser, lambda d: "You can send again in" in status_line(d), what="the countdown")
    first = status_line(browser)
    wait_for(browser, lambda d: status_line(d) != first, timeout=3, what="the countdown to move")
    assert composer(browser).get_attribute("value") == "one too many"
    assert not send_button(browser).is_enabled()
    assert operator_messages(chat, "one too many") == []
    assert Message.objects.filter(chat=chat, role="operator").count() == 4
    assert AuditEvent.objects.filter(action="ratelimit.block", chat_id=chat.pk).count() == 1
    browser.refresh()
    assert composer(browser).get_attribute("value") == "one too many"


def test_an_expired_session_keeps_the_draft_through_the_login(browser, server, alice, nodes):
    from django.contrib.sessions.models import Session

    chat = open_chat(browser, server, alice)
    composer(browser).send_keys("written before the session expired")
    Session.objects.all().delete()
    send_button(browser).click()
    wait_for(browser, lambda d: "session has expired" in status_line(d), what="the expired-session notice")
    click(browser, "#composer-status a")
    fill_login(browser, alice)
    wait_for_page(browser, f"/console/chats/{chat.pk}/", what="back in the chat")
    assert composer(browser).get_attribute("value") == "written before the session expired"
    send_button(browser).click()
    wait_for_text(browser, "NODA1/echo: written before the session expired")
    assert len(operator_messages(chat, "written before the session expired")) == 1
    assert AuditEvent.objects.filter(action="auth.login", actor="alice").count() == 2


def test_an_operator_who_loses_the_role_is_told_on_the_open_chat_page(browser, server, alice, nodes):
    from django.contrib.auth.models import Group

    from operators.roles import OPERATORS_GROUP

    open_chat(browser, server, alice)
    composer(browser).send_keys("written before the role was taken away")
    alice.user.groups.remove(Group.objects.get(name=OPERATORS_GROUP))
    wait_for(browser, lambda d: "no longer use the console" in status_line(d), what="the refused-access notice")
    assert composer(browser).get_attribute("value") == "written before the role was taken away"
    assert AuditEvent.objects.filter(action="authz.denied", actor="alice").exists()


def test_a_failed_send_is_retried_once_the_node_is_back(browser, server, alice, spare_node):
    chat = open_chat(browser, server, alice, node="NODA3")
    spare_node.stop()
    composer(browser).send_keys("through the outage")
    send_button(browser).click()
    if "was down at the last check" in status_line(browser):
        send_button(browser).click()  # the warning asks for a second press
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "li.msg.failed form.retry button"), what="Retry")
    assert composer(browser).get_attribute("value") == ""  # the message is stored, as failed
    (sent,) = operator_messages(chat, "through the outage")
    assert sent.status == "failed"
    spare_node.start()
    click(browser, "li.msg.failed form.retry button")
    wait_for_text(browser, "NODA3/echo: through the outage")
    sent.refresh_from_db()
    assert sent.status == "delivered"
    assert sent.attempts == 2
    wait_for(browser, lambda d: "attempt 2" in d.find_element(By.CSS_SELECTOR, f"#m{sent.pk} .meta").text)
    assert Message.objects.filter(chat=chat).count() == 2
    events = AuditEvent.objects.filter(action="message.send", chat_id=chat.pk).order_by("id")
    assert [(event.outcome, event.details["attempt"]) for event in events] == [("failed", 1), ("delivered", 2)]


def test_a_second_tab_sees_a_new_message_within_5_seconds(browser, server, alice, nodes):
    chat = open_chat(browser, server, alice)
    first = browser.current_window_handle
    browser.switch_to.new_window("tab")
    browser.get(f"{server.base}/console/chats/{chat.pk}/")
    second = browser.current_window_handle
    browser.switch_to.window(first)
    composer(browser).send_keys("seen elsewhere")
    send_button(browser).click()
    wait_for_text(browser, "NODA1/echo: seen elsewhere")
    browser.switch_to.window(second)
    wait_for_text(browser, "NODA1/echo: seen elsewhere", timeout=5)
    assert "seen elsewhere" in texts(browser)
    assert len(operator_messages(chat, "seen elsewhere")) == 1
    assert AuditEvent.objects.filter(action="message.send", chat_id=chat.pk).count() == 1


def test_older_messages_load_above_without_a_reload(browser, server, alice, nodes):
    from datetime import timedelta

    from sofiia.lib.clock import clock_now

    chat = Chat.objects.create(owner=alice.user, title="long", agent="echo", node="NODA1")
    start = clock_now() - timedelta(hours=1)
    Message.objects.bulk_create(
        Message(
            chat=chat, role="agent", node="NODA1", status="delivered", text=f"line {n}", ts=start + timedelta(seconds=n)
        )
        for n in range(120)
    )
    log_in(browser, server, alice, path=f"/console/chats/{chat.pk}/")
    assert texts(browser)[0] == "line 70"
    assert texts(browser)[-1] == "line 119"
    # The chat opens at its newest message.
    assert browser.execute_script("return window.innerHeight + window.scrollY >= document.body.scrollHeight - 2")
    mark_page(browser)
    older = browser.find_element(By.ID, "older")
    older.click()
    wait_for(browser, lambda d: len(texts(d)) == 100, what="a second page above")
    older.click()
    wait_for(browser, lambda d: len(texts(d)) == 120, what="the oldest page above")
    assert texts(browser) == [f"line {n}" for n in range(120)]
    assert not browser.find_elements(By.ID, "older")
    assert page_is_marked(browser)
    assert Message.objects.filter(chat=chat).count() == 120


def test_search_rename_and_archive(browser, server, alice, nodes):
    for title in ("Deploy NODA1", "Billing"):
        Chat.objects.create(owner=alice.user, title=title, agent="echo", node="NODA1")
    log_in(browser, server, alice)
    search = browser.find_element(By.ID, "q")
    search.send_keys("deploy" + Keys.ENTER)
    wait_for_page(browser, lambda url: "q=deploy" in url, what="the search results")
    titles = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#chats .title")]
    assert titles == ["Deploy NODA1"]
    browser.find_element(By.PARTIAL_LINK_TEXT, "Deploy NODA1").click()
    browser.find_element(By.CSS_SELECTOR, ".rename summary").click()
    title = browser.find_element(By.ID, "rename-title")
    title.clear()
    title.send_keys("Deploy, renamed" + Keys.ENTER)
    wait_for(browser, lambda d: d.find_element(By.ID, "chat-title").text == "Deploy, renamed")
    browser.find_element(By.XPATH, "//button[normalize-space()='Archive']").click()
    wait_for_page(browser, "/console/", what="the list after archiving")
    assert [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#chats .title")] == ["Billing"]
    browser.find_element(By.LINK_TEXT, "Archived chats").click()
    assert [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#chats .title")] == ["Deploy, renamed"]
    chat = Chat.objects.get(title="Deploy, renamed")
    assert chat.archived_at is not None
    actions = list(AuditEvent.objects.filter(chat_id=chat.pk).order_by("id").values_list("action", flat=True))
    assert actions == ["chat.change", "chat.change"]


def test_the_console_in_ukrainian(browser, server, alice, nodes):
    chat = open_chat(browser, server, alice, title="Hello")
    browser.find_element(By.CSS_SELECTOR, "button[name=language][value=uk]").click()
    wait_for(browser, lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "uk")
    assert send_button(browser).text == "Надіслати"
    composer(browser).send_keys("Hello, agent" + Keys.ENTER)
    wait_for_text(browser, "NODA1/echo: Hello, agent")
    assert "Ви ·" in browser.find_element(By.CSS_SELECTOR, "li.msg.operator .meta").text
    assert browser.find_element(By.ID, "chat-title").text == "Hello"
    (sent,) = operator_messages(chat, "Hello, agent")
    assert sent.status == "delivered"
    assert AuditEvent.objects.filter(action="message.send", chat_id=chat.pk).count() == 1


def test_after_logout_back_shows_nothing_of_the_chat(browser, server, alice, nodes):
    chat = open_chat(browser, server, alice)
    composer(browser).send_keys("a secret transcript" + Keys.ENTER)
    wait_for_text(browser, "NODA1/echo: a secret transcript")
    browser.find_element(By.CSS_SELECTOR, "#logout button").click()
    wait_for_page(browser, lambda url: "/console/login/" in url, what="the login page")
    login_page = browser.find_element(By.TAG_NAME, "html")
    browser.back()
    wait_for(browser, staleness_of(login_page), what="Back to leave the login page")
    wait_for_page(browser, lambda url: "/console/login/" in url, what="Back to land on the login page")
    assert "a secret transcript" not in browser.page_source
    assert browser.execute_script("return window.sessionStorage.length") == 0
    assert AuditEvent.objects.filter(action="auth.logout", actor="alice").count() == 1
    assert len(operator_messages(chat, "a secret transcript")) == 1


@pytest.mark.parametrize("width", [1366, 390])
def test_the_console_has_no_accessibility_violations(browser, server, alice, nodes, width):
    from tests.browser.pages import axe_violations

    browser.set_window_size(width, 900 if width > 500 else 844)
    browser.get(f"{server.base}/console/login/")
    assert axe_violations(browser) == []
    chat = open_chat(browser, server, alice, agent="fail500")
    Message.objects.create(
        chat=chat,
        role="agent",
        node="NODA1",
        status="delivered",
        text="Here:\n```sh\nls -la\n```\n| a | b |\n|---|---|\n| 1 | 2 |",
    )
    composer(browser).send_keys("this one fails" + Keys.ENTER)
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "li.msg.failed form.retry"), what="the failed message")
    browser.refresh()
    assert axe_violations(browser) == []
    browser.get(f"{server.base}/console/")
    assert axe_violations(browser) == []
    assert Message.objects.filter(chat=chat, role="operator", status="failed").count() == 1
    if width < 500:
        # The new-chat form is folded on a narrow screen; opened, it stacks its fields.
        click(browser, "#new-chat summary")
        tops = [field.rect["y"] for field in browser.find_elements(By.CSS_SELECTOR, ".new-chat .field")]
        assert tops == sorted(tops)
        assert len(set(tops)) == 3
        assert browser.execute_script("return document.documentElement.scrollWidth") <= width


def test_a_reply_with_an_aligned_table_shows_aligned_with_no_csp_violation(browser, server, alice, nodes):
    chat = open_chat(browser, server, alice)
    box = composer(browser)
    for number, line in enumerate(["host | load | errors", "--- | :-: | --:", "a | 0.5 | 12"]):
        if number:
            ActionChains(browser).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()
        box.send_keys(line)
    send_button(browser).click()
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#messages .msg.agent table"), what="the table")
    (sent,) = operator_messages(chat, "host | load | errors\n--- | :-: | --:\na | 0.5 | 12")
    reply = Message.objects.get(reply_to=sent)
    assert '<td class="align-right">12</td>' in reply.html
    assert "style" not in reply.html
    assert AuditEvent.objects.filter(action="message.send", outcome="delivered", target_id=str(sent.pk)).count() == 1

    def alignments() -> list[str]:
        cells = browser.find_elements(By.CSS_SELECTOR, f"#m{reply.pk} td")
        return [cell.value_of_css_property("text-align") for cell in cells]

    # As the script placed it, then as the page shows it when loaded whole.
    assert alignments() == ["start", "center", "right"]
    browser.refresh()
    wait_for_page(browser, f"/console/chats/{chat.pk}/")
    assert alignments() == ["start", "center", "right"]
