"""What an operator does in the console, as browser steps."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.live import LiveConsole
from tests.personas import Persona

T = TypeVar("T")
AXE = Path(__file__).parent / "vendor" / "axe.min.js"


# The chat page replaces parts of itself as it polls: an element found a moment ago may be gone
# or stale by the time it is read, so a wait simply asks again.
REPLACED = (NoSuchElementException, StaleElementReferenceException)


def wait_for(driver: WebDriver, condition: Callable[[WebDriver], T], timeout: float = 10.0, what: str = "") -> T:
    return WebDriverWait(driver, timeout, poll_frequency=0.1, ignored_exceptions=REPLACED).until(
        condition, message=what
    )


def click(driver: WebDriver, css: str, timeout: float = 10.0) -> None:
    """Click the element ``css`` names, finding it again if the page's polling replaced it."""

    def clicked(d: WebDriver) -> bool:
        d.find_element(By.CSS_SELECTOR, css).click()
        return True

    WebDriverWait(driver, timeout, poll_frequency=0.1, ignored_exceptions=REPLACED).until(
        clicked, message=f"to click {css}"
    )


def log_in(driver: WebDriver, server: LiveConsole, persona: Persona, *, path: str = "/console/") -> None:
    driver.get(f"{server.base}{path}")
    fill_login(driver, persona)
    wait_for_page(driver, lambda url: "/login/" not in url, what="the login to go through")


def wait_for_page(driver: WebDriver, where: str | Callable[[str], bool], what: str = "") -> None:
    """Until the browser's path ends with ``where`` (or its address satisfies it) and that page
    has loaded.

    Only the path is compared: the login page's address, ``…/login/?next=/console/chats/7/``,
    ends with the page it leads back to. And the address changes as soon as a navigation
    commits, while the new document may still be loading; finding its elements then races
    the parser.
    """
    matches = where if callable(where) else lambda url: urlsplit(url).path.endswith(where)
    wait_for(
        driver,
        lambda d: matches(d.current_url) and d.execute_script("return document.readyState") == "complete",
        what=what or f"{where} to load",
    )


def fill_login(driver: WebDriver, persona: Persona) -> None:
    driver.find_element(By.NAME, "username").send_keys(persona.username)
    driver.find_element(By.NAME, "password").send_keys(persona.password)
    driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()


def composer(driver: WebDriver) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, "#composer textarea")


def send_button(driver: WebDriver) -> WebElement:
    return driver.find_element(By.ID, "send")


def texts(driver: WebDriver) -> list[str]:
    """The transcript as shown: each stored message's text, oldest first."""
    return [item.text for item in driver.find_elements(By.CSS_SELECTOR, "#messages li.msg[id] .text")]


def wait_for_text(driver: WebDriver, text: str, timeout: float = 10.0) -> None:
    """Until a message containing ``text`` is shown."""
    wait_for(driver, lambda d: any(text in shown for shown in texts(d)), timeout, what=f"{text!r} in the transcript")


def send_in_flight(driver: WebDriver) -> bool:
    """Whether the page has a send awaiting its answer: its bubble, or the composer locked.

    The page shows both before its request leaves (in the same key or click handler), and a
    key or click Selenium sends is handled before the call returns: right after one, this
    tells whether it started a send, with nothing to wait for.
    """
    return driver.execute_script(  # type: ignore[no-any-return]
        "return !!document.querySelector('#messages li.bubble.sending')"
        " || document.getElementById('send').disabled"
        " || document.querySelector('#composer textarea').readOnly;"
    )


def status_line(driver: WebDriver) -> str:
    return driver.find_element(By.ID, "composer-status").text


def mark_page(driver: WebDriver) -> None:
    """Leave a mark in the page's window: it is gone if the page reloads."""
    driver.execute_script("window.__sofiiaMark = 'still here';")


def page_is_marked(driver: WebDriver) -> bool:
    return driver.execute_script("return window.__sofiiaMark === 'still here';") is True


def api_send(server: LiveConsole, persona: Persona, chat_id: int, text: str) -> requests.Response:
    return server.session(persona.token).post(
        f"{server.base}/api/chats/{chat_id}/send",
        json={"text": text},
        headers={"Idempotency-Key": uuid.uuid4().hex},
        timeout=30,
    )


def axe_violations(driver: WebDriver) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.x A/AA violations on the current page."""
    driver.execute_script(AXE.read_text())
    result = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})
          .then(r => done(JSON.stringify(r.violations.map(v => ({id: v.id, impact: v.impact,
                nodes: v.nodes.map(n => n.target.join(' ') + ': ' + n.failureSummary)})))),
                e => done(JSON.stringify([{id: 'axe-error', nodes: [String(e)]}])));
        """
    )
    return json.loads(result)  # type: ignore[no-any-return]
