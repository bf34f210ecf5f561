"""The console's pages in Chromium: every page under the strict CSP (the module's browser
fixture fails a test on any violation) and axe-clean, the layouts at 390 and 1024 px, the
static files' hashed names and caching, and the chat page's weight."""

from __future__ import annotations

import re

import pytest
import requests
from selenium.webdriver.common.by import By

from chats.models import Chat, Message
from tests.browser.pages import axe_violations, click, log_in, wait_for, wait_for_page
from tests.personas import make_persona

# The chat page's budget: its HTML, style and script, uncompressed.
CHAT_PAGE_MAX_BYTES = 60 * 1024


@pytest.fixture
def alice(db: None):
    return make_persona("alice")


def chat_with_messages(alice, *, title: str = "Ops", count: int = 6) -> tuple[Chat, list[Message]]:
    chat = Chat.objects.create(owner=alice.user, title=title, agent="echo", node="NODA1")
    messages = []
    for number in range(count):
        operator = number % 2 == 0
        messages.append(
            Message.objects.create(
                chat=chat,
                role="operator" if operator else "agent",
                operator=alice.user if operator else None,
                idempotency_key=f"k{number}" if operator else None,
                text=f"Олена asks about backup {number}" if operator else f"Backup {number} is **done**.",
                html="" if operator else f"<p>Backup {number} is <strong>done</strong>.</p>",
                node="NODA1",
                status="delivered",
                model=None if operator else "sofiia-small",
                tokens_used=None if operator else 20 + number,
                latency_ms=None if operator else 300 + number,
            )
        )
    return chat, messages


@pytest.mark.parametrize("width", [1366, 390])
def test_every_console_page_is_accessible_and_keeps_to_the_policy(browser, server, alice, nodes, width):
    browser.set_window_size(width, 900 if width > 500 else 844)
    chat, messages = chat_with_messages(alice)
    Message.objects.create(chat=chat, role="operator", operator=alice.user, idempotency_key="f1", text="lost",
                           node="NODA1", status="failed", failure="node_timeout", attempts=1)  # fmt: skip
    archived = Chat.objects.create(owner=alice.user, title="Old", agent="echo", node="NODA1")
    Chat.objects.filter(pk=archived.pk).update(archived_at=chat.created_at)
    log_in(browser, server, alice, path=f"/console/chats/{chat.pk}/")
    click(browser, "#settings summary")
    assert axe_violations(browser) == []
    for path in (
        "/console/",
        "/console/?q=%D0%BE%D0%BB%D0%B5%D0%BD%D0%B0",
        "/console/search/?q=backup",
        f"/console/chats/{chat.pk}/?at={messages[2].pk}",
        f"/console/chats/{archived.pk}/",
        f"/console/chats/{chat.pk}/?cursor=damaged",
        "/console/chats/999999/",
    ):
        browser.get(f"{server.base}{path}")
        assert axe_violations(browser) == [], path
        assert browser.execute_script("return document.documentElement.scrollWidth") <= width, path


def test_search_finds_a_message_in_any_case_and_opens_the_chat_at_it(browser, server, alice, nodes):
    _, messages = chat_with_messages(alice, count=60)
    log_in(browser, server, alice)
    search = browser.find_element(By.ID, "q")
    search.send_keys("ОЛЕНА ASKS ABOUT BACKUP 58\n")
    wait_for_page(browser, lambda url: "q=" in url, what="the search results")
    hits = browser.find_elements(By.CSS_SELECTOR, "#message-hits li[data-message] a")
    assert [hit.find_element(By.TAG_NAME, "mark").text for hit in hits] == ["Олена asks about backup 58"]
    hits[0].click()
    wait_for_page(browser, lambda url: "at=" in url, what="the chat at the found message")
    found = browser.find_element(By.CSS_SELECTOR, "li.msg.found")
    assert found.get_attribute("id") == f"m{messages[58].pk}"
    assert browser.execute_script(
        "const r = arguments[0].getBoundingClientRect(); return r.top >= 0 && r.top < window.innerHeight;", found
    )
    assert browser.find_element(By.ID, "newest").is_displayed()


def shown(browser, css: str) -> bool:
    """Whether the page shows the element (WebDriver's own check calls anything inside a closed
    ``<details>`` hidden, whatever the style sheet says)."""
    return bool(browser.execute_script("return document.querySelector(arguments[0]).checkVisibility()", css))


def test_at_390_px_the_new_chat_form_is_folded_and_opens_on_demand(browser, server, alice, nodes):
    chat_with_messages(alice, count=0)
    browser.set_window_size(390, 844)
    log_in(browser, server, alice)
    assert not shown(browser, "input[name=title]")
    assert browser.find_element(By.ID, "new-chat").rect["height"] < 60
    click(browser, "#new-chat summary")
    wait_for(browser, lambda d: shown(d, "input[name=title]"), what="the opened new-chat form")
    browser.set_window_size(1366, 900)
    browser.refresh()
    assert shown(browser, "input[name=title]")
    assert not shown(browser, "#new-chat summary")


def test_from_1024_px_the_recent_chats_sit_beside_the_open_chat(browser, server, alice, nodes):
    other, _ = chat_with_messages(alice, title="Other", count=0)
    chat, _ = chat_with_messages(alice, title="Open one", count=2)
    browser.set_window_size(1024, 800)
    log_in(browser, server, alice, path=f"/console/chats/{chat.pk}/")
    sidebar, pane = browser.find_element(By.ID, "chat-sidebar"), browser.find_element(By.ID, "chat-pane")
    assert sidebar.is_displayed()
    assert sidebar.rect["x"] + sidebar.rect["width"] <= pane.rect["x"]
    assert abs(sidebar.rect["y"] - pane.rect["y"]) < 40
    current = browser.find_element(By.CSS_SELECTOR, "#sidebar-chats a[aria-current=page]")
    assert current.text.startswith("Open one")
    browser.find_element(By.CSS_SELECTOR, f"#sidebar-chats li[data-chat='{other.pk}'] a").click()
    wait_for_page(browser, f"/console/chats/{other.pk}/")
    browser.set_window_size(390, 844)
    assert not browser.find_element(By.ID, "chat-sidebar").is_displayed()
    assert browser.find_element(By.ID, "back-to-list").is_displayed()


def test_static_files_have_hashed_names_and_are_cached_for_good(browser, server, alice, nodes):
    chat, _ = chat_with_messages(alice)
    log_in(browser, server, alice, path=f"/console/chats/{chat.pk}/")
    urls = browser.execute_script(
        "return [...document.querySelectorAll('link[rel=stylesheet], link[rel=icon], script[src]')]"
        ".map(e => e.href || e.src);"
    )
    assert len(urls) == 3
    for url in urls:
        assert re.search(r"/static/console/(console|favicon)\.[0-9a-f]{12}\.(css|js|svg)$", url), url
        response = requests.get(url, timeout=10)
        assert response.status_code == 200
        assert "immutable" in response.headers["Cache-Control"]
        assert "max-age=315360000" in response.headers["Cache-Control"]


def test_the_chat_page_weighs_under_60_kb(browser, server, alice, nodes):
    # A full first page: 50 messages, half of them replies with their footer.
    chat, _ = chat_with_messages(alice, count=60)
    log_in(browser, server, alice, path=f"/console/chats/{chat.pk}/")
    session = requests.Session()
    for cookie in browser.get_cookies():
        session.cookies.set(cookie["name"], cookie["value"])
    page = session.get(f"{server.base}/console/chats/{chat.pk}/", timeout=10)
    assert page.status_code == 200
    assets = re.findall(r'(?:href|src)="(/static/console/console\.[0-9a-f]{12}\.(?:css|js))"', page.text)
    assert len(assets) == 2, assets
    sizes = [len(session.get(f"{server.base}{asset}", timeout=10).content) for asset in assets]
    total = len(page.content) + sum(sizes)
    print(f"\nchat page: {len(page.content)} B HTML + {sizes} B style and script = {total} B")
    assert total < CHAT_PAGE_MAX_BYTES
