"""ops/healthcheck.py, the container health check, against a console under gunicorn."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ops.healthcheck import default_url
from tests.deploy.compose import PROJECT
from tests.live import free_port


def healthcheck(*args: str, allowed_hosts: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin"}
    if allowed_hosts is not None:
        env["DJANGO_ALLOWED_HOSTS"] = allowed_hosts
    return subprocess.run(
        [sys.executable, "ops/healthcheck.py", *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.live
def test_a_healthy_console_passes_with_the_first_allowed_host_name_as_host(live_console):
    console = live_console(workers=1, DJANGO_ALLOWED_HOSTS="127.0.0.1,console.example.org")
    result = healthcheck(f"{console.base}/api/health", allowed_hosts=".console.example.org,elsewhere.example")
    assert result.returncode == 0, result.stdout
    assert result.stdout == f"PASS health: {console.base}/api/health answered 200\n"
    # The Host header really is the first allowed name: one the console does not allow fails.
    refused = healthcheck(f"{console.base}/api/health", allowed_hosts="elsewhere.example")
    assert refused.returncode == 1
    assert refused.stdout == f"FAIL health: {console.base}/api/health answered 400\n"


@pytest.mark.live
def test_a_page_that_is_not_200_fails(live_console):
    console = live_console(workers=1)
    result = healthcheck(f"{console.base}/api/chats", "--host", "127.0.0.1")
    assert result.returncode == 1
    assert result.stdout == f"FAIL health: {console.base}/api/chats answered 401\n"


def test_nothing_listening_fails_quickly():
    url = f"http://127.0.0.1:{free_port()}/api/health"
    result = healthcheck(url, "--timeout", "2")
    assert result.returncode == 1
    assert result.stdout.startswith(f"FAIL health: {url} unreachable (")


def test_only_http_urls_are_checked():
    result = healthcheck("file:///etc/passwd")
    assert result.returncode == 1
    assert result.stdout == "FAIL health: not an http(s) URL: file:///etc/passwd\n"


@pytest.mark.parametrize(
    ("bind", "url"),
    [
        (None, "http://127.0.0.1:8000/livez"),
        ("0.0.0.0:9000", "http://127.0.0.1:9000/livez"),
        ("[::]:9001", "http://127.0.0.1:9001/livez"),
        ("10.1.2.3:8080,127.0.0.1:8081", "http://10.1.2.3:8080/livez"),
        ("console.internal", "http://console.internal:8000/livez"),
    ],
)
def test_without_a_url_it_asks_livez_where_gunicorn_listens(bind, url):
    assert default_url(bind) == url


@pytest.mark.live
def test_the_default_check_follows_gunicorn_bind(live_console):
    console = live_console(workers=1)
    env = {"PATH": "/usr/bin:/bin", "GUNICORN_BIND": f"0.0.0.0:{console.port}"}
    result = subprocess.run(
        [sys.executable, "ops/healthcheck.py"], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout
    assert result.stdout == f"PASS health: http://127.0.0.1:{console.port}/livez answered 200\n"
