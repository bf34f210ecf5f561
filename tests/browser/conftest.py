"""The console in a real browser: Debian's Chromium, headless, driven through Debian's
chromedriver by Selenium, against the console under gunicorn (DEBUG off) on the test database.

One console and one browser serve a whole module; each test starts from a browser with no
cookies and no storage, and a database emptied by ``transactional_db``. After every test the
browser's console log is read: a Content-Security-Policy violation or an uncaught script
error fails the test. A failed test leaves a screenshot and the page's HTML in a temporary
directory named in its output.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from nodes.devrouter import DevRouter
from tests.live import PROJECT, LiveConsole, free_port
from tests.waiting import wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Sends one chat may make per window on the browser tests' console: low enough for the
# rate-limit test to reach, high enough for every other test's few sends.
CHAT_RATE = "4/60"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.live)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def collected_static() -> None:
    """With DEBUG off, WhiteNoise serves what collectstatic gathered."""
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=PROJECT,
        check=True,
        env={"DJANGO_DEBUG": "1", "PATH": "/usr/bin:/bin"},
    )


class NodeProcess:
    """A dev router in a process of its own, so stopping it really stops it: every connection
    the console keeps open to it is closed too, as when a node goes down."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> NodeProcess:
        code = f"from nodes.devrouter import DevRouter; DevRouter({self.name!r}, port={self.port}).serve_forever()"
        self.proc = subprocess.Popen([sys.executable, "-c", code], cwd=PROJECT)

        def healthy() -> bool:
            try:
                return requests.get(f"{self.url}/health", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_until(healthy, 20, what=f"the dev router {self.name} to start", interval=0.1)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture(scope="module")
def spare_node() -> Iterator[NodeProcess]:
    """NODA3, a dev router the tests may stop and start again on the same port."""
    node = NodeProcess("NODA3").start()
    yield node
    node.stop()


@pytest.fixture(scope="module")
def server(
    django_db_setup: None,
    django_db_blocker: Any,
    collected_static: None,
    dev_routers: dict[str, DevRouter],
    spare_node: NodeProcess,
) -> Iterator[LiveConsole]:
    from django.conf import settings

    urls = {**{name: router.url for name, router in dev_routers.items()}, "NODA3": spare_node.url}
    # The in-memory rate limiter counts per process: one worker keeps the limit exact there.
    on_redis = settings.SOFIIA_RATE_LIMIT_BACKEND == "redis"
    with django_db_blocker.unblock():
        console = LiveConsole(
            workers=2 if on_redis else 1,
            env_overrides={
                "SOFIIA_NODES": ",".join(f"{name}={url}" for name, url in urls.items()),
                "SOFIIA_RATE_LIMIT_CHAT": CHAT_RATE,
                "SOFIIA_INFER_TIMEOUT": "10",
            },
        ).start()
    yield console
    console.stop()


@pytest.fixture
def nodes(settings: Any, dev_routers: dict[str, DevRouter], spare_node: NodeProcess) -> dict[str, DevRouter]:
    """The two in-process dev routers (their calls recorded, none left from the last test);
    NODA3 (``spare_node``) is known to the console too."""
    from tests.caches import clear_caches

    settings.SOFIIA_NODES = {**{name: router.url for name, router in dev_routers.items()}, "NODA3": spare_node.url}
    settings.SOFIIA_DEFAULT_NODE = "NODA1"
    for router in dev_routers.values():
        router.calls.clear()
    clear_caches()
    return dev_routers


def _chromium(user_data_dir: str) -> webdriver.Chrome:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("Chromium is not installed: `make browser-tools` installs Debian's chromium and chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={user_data_dir}")
    options.add_argument("--window-size=1366,900")
    options.add_argument("--lang=en-US")
    options.add_experimental_option("prefs", {"intl.accept_languages": "en-US,en"})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


@pytest.fixture(scope="module")
def chromium() -> Iterator[webdriver.Chrome]:
    profile = tempfile.mkdtemp(prefix="sofiia-chromium-")
    driver = _chromium(profile)
    driver.set_script_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def console_problems(driver: webdriver.Chrome) -> list[str]:
    """CSP violations and uncaught script errors in the browser's console since the last look.
    (A failed request, which the console shows in its own words, is logged too and allowed.)"""
    problems = []
    for entry in driver.get_log("browser"):
        text = entry.get("message", "")
        if "Content Security Policy" in text or "Content-Security-Policy" in text or "Uncaught" in text:
            problems.append(text)
    return problems


@pytest.fixture
def browser(
    request: pytest.FixtureRequest, chromium: webdriver.Chrome, server: LiveConsole, transactional_db: None
) -> Iterator[webdriver.Chrome]:
    """The module's browser, blank: one window of 1366 by 900, no cookies, no storage."""
    driver = chromium
    for handle in driver.window_handles[1:]:
        driver.switch_to.window(handle)
        driver.close()
    driver.switch_to.window(driver.window_handles[0])
    driver.set_window_size(1366, 900)
    driver.get(f"{server.base}/static/console/favicon.svg")
    driver.delete_all_cookies()
    driver.execute_script("window.sessionStorage.clear(); window.localStorage.clear();")
    driver.get_log("browser")
    yield driver
    problems = console_problems(driver)
    call = getattr(request.node, "report_call", None)
    if call is not None and call.failed:
        folder = Path(tempfile.mkdtemp(prefix="sofiia-browser-failure-"))
        for number, handle in enumerate(driver.window_handles):
            driver.switch_to.window(handle)
            driver.save_screenshot(str(folder / f"{request.node.name}-{number}.png"))
            (folder / f"{request.node.name}-{number}.html").write_text(driver.page_source)
        (folder / "gunicorn.log").write_text(server.log())
        print(f"\nscreenshots, pages and the server log of the failure: {folder}")
    assert not problems, f"the browser console reported CSP violations or script errors: {problems}"
