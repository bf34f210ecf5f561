"""ops/Caddyfile: valid for Caddy, and, run for real in front of two consoles under gunicorn,
it balances over both, survives one going away, replaces forged X-Forwarded-* headers and
keeps /metrics to the allowed networks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.deploy.compose import CADDYFILE
from tests.live import LiveConsole, free_port
from tests.tools import tool
from tests.waiting import wait_until


@contextmanager
def caddy(upstreams: list[LiveConsole], log_lines: list[str] | None = None, **env: str) -> Iterator[str]:
    """Run Caddy with ops/Caddyfile on a free port in front of ``upstreams``; yield its base URL.
    With ``log_lines``, Caddy's own log is appended to it when Caddy stops."""
    port, health_port = free_port(), free_port()
    home = Path(tempfile.mkdtemp(prefix="sofiia-caddy-"))
    log_path = home / "caddy.log"
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "CADDY_ADMIN": "off",
        "SOFIIA_SITE_ADDRESS": f"http://127.0.0.1:{port}",
        "SOFIIA_UPSTREAMS": " ".join(console.base.removeprefix("http://") for console in upstreams),
        "SOFIIA_CADDY_HEALTH": f"127.0.0.1:{health_port}",
        **env,
    }
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [tool("caddy"), "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:

        def serving() -> bool:
            assert proc.poll() is None, log_path.read_text()
            try:
                own = requests.get(f"http://127.0.0.1:{health_port}/healthz", timeout=2)
                return own.status_code == 200 and requests.get(f"{base}/api/health", timeout=5).status_code == 200
            except requests.RequestException:
                return False

        try:
            wait_until(serving, 30, what="Caddy to serve", interval=0.2)
        except AssertionError as timed_out:
            raise AssertionError(f"{timed_out}; Caddy's log:\n{log_path.read_text()}") from None
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        if log_lines is not None:
            log_lines.extend(log_path.read_text(errors="replace").splitlines())
        shutil.rmtree(home, ignore_errors=True)


def access_lines(console: LiveConsole) -> list[dict[str, object]]:
    lines = (json.loads(line) for line in console.log().splitlines() if line.startswith("{"))
    return [line for line in lines if line.get("logger") == "sofiia.access"]


def test_the_caddyfile_is_valid_for_caddy(tmp_path):
    result = subprocess.run(
        [tool("caddy"), "validate", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path), "CADDY_ADMIN": "off"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Valid configuration" in result.stdout + result.stderr


@pytest.mark.live
def test_requests_are_spread_over_both_consoles_and_survive_one_going_away(live_console):
    # Caddy forwards from this host: the consoles trust it, so the client's X-Request-ID goes through.
    behind_caddy = {"SOFIIA_TRUSTED_PROXIES": "127.0.0.1"}
    a, b = live_console(workers=1, **behind_caddy), live_console(workers=1, **behind_caddy)
    with caddy([a, b]) as base:
        ids = [uuid.uuid4().hex for _ in range(8)]
        for request_id in ids:
            response = requests.get(f"{base}/api/health", headers={"X-Request-ID": request_id}, timeout=10)
            assert response.status_code == 200
            assert response.headers["X-Request-ID"] == request_id
        served = [{line["request_id"] for line in access_lines(console)} & set(ids) for console in (a, b)]
        assert served[0]
        assert served[1]
        assert served[0] | served[1] == set(ids)

        a.stop()
        answers = [requests.get(f"{base}/api/health", timeout=15).status_code for _ in range(6)]
        assert answers == [200] * 6


@pytest.mark.live
def test_forged_forwarded_headers_are_replaced_by_what_caddy_saw(live_console):
    env = {"SOFIIA_TRUSTED_PROXIES": "127.0.0.1", "DJANGO_SECURE_SSL_REDIRECT": "1"}
    a, b = live_console(workers=1, **env), live_console(workers=1, **env)
    with caddy([a, b]) as base:
        request_id = uuid.uuid4().hex
        forged = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https", "X-Request-ID": request_id}
        response = requests.get(f"{base}/console/login/", headers=forged, allow_redirects=False, timeout=10)
        # Caddy said http, so the console redirects to https instead of serving the page.
        assert response.status_code == 301
        assert response.headers["Location"].startswith("https://")
        (line,) = [line for console in (a, b) for line in access_lines(console) if line["request_id"] == request_id]
        assert line["ip"] == "127.0.0.1"


@pytest.mark.live
def test_metrics_are_served_to_allowed_networks_only(live_console):
    a = live_console(workers=1)
    with caddy([a]) as base:
        response = requests.get(f"{base}/metrics", timeout=10)
        assert response.status_code == 200
        assert "sofiia_" in response.text or "django_http" in response.text
    with caddy([a], SOFIIA_METRICS_ALLOW="192.0.2.0/24") as base:
        for path in ("/metrics", "/metrics/"):
            response = requests.get(f"{base}{path}", timeout=10)
            assert response.status_code == 403
            assert response.text == "Forbidden"
        assert requests.get(f"{base}/api/health", timeout=10).status_code == 200


@pytest.mark.live
def test_security_headers_are_set_and_secrets_never_reach_the_log(live_console):
    console = live_console(workers=1, SOFIIA_AUDIT_KEYS="caddy-test-audit-key-" + "k" * 20)
    log: list[str] = []
    with caddy([console], log_lines=log) as base:
        response = requests.get(
            f"{base}/api/audit",
            headers={"X-Audit-Key": "caddy-test-audit-key-" + "k" * 20, "Cookie": "sessionid=s3cr3t-session"},
            timeout=10,
        )
        assert response.status_code == 200
        assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    requests_logged = [line for line in log if '"/api/audit"' in line]
    assert requests_logged, log[-20:]
    for line in requests_logged:
        assert "k" * 20 not in line
        assert "s3cr3t-session" not in line
