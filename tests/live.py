"""Start the console under gunicorn in a subprocess, on the test database, for tests that
need real processes: several workers, real HTTP, shared or separate caches."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import requests
from django.conf import settings
from django.db import connection

from tests.waiting import wait_until

PROJECT = Path(__file__).resolve().parent.parent
LIVE_SECRET_KEY = "live-test-secret-key-" + "x" * 40
# The audit chain's key, shared by the test process and every console it starts, as all the
# instances of a deployment share theirs (tests/conftest.py gives it to the test process).
TEST_AUDIT_CHAIN_KEY = "tests:" + "audit-chain-test-key-" * 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url() -> str:
    """The URL of the database this test process uses (the test database)."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


@dataclass
class LiveConsole:
    env_overrides: dict[str, str] = field(default_factory=dict)
    workers: int = 2
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("SOFIIA_", "DJANGO_", "PROMETHEUS_", "GUNICORN_", "DATABASE_URL"))
        }
        env.update(
            {
                "DATABASE_URL": database_url(),
                "DJANGO_DEBUG": "0",
                "DJANGO_SECRET_KEY": LIVE_SECRET_KEY,
                "SOFIIA_AUDIT_CHAIN_KEY": TEST_AUDIT_CHAIN_KEY,
                "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
                # Tests talk plain HTTP to loopback, where Secure cookies would never come back.
                "DJANGO_SECURE_COOKIES": "0",
                "SOFIIA_NODES": ",".join(f"{name}={url}" for name, url in settings.SOFIIA_NODES.items()),
                "SOFIIA_REDIS_URL": settings.SOFIIA_REDIS_URL,
                "SOFIIA_IDEMPOTENCY_BACKEND": settings.SOFIIA_IDEMPOTENCY_BACKEND,
                "SOFIIA_RATE_LIMIT_BACKEND": settings.SOFIIA_RATE_LIMIT_BACKEND,
                "SOFIIA_AUDIT_KEYS": ",".join(settings.SOFIIA_AUDIT_KEYS),
                "SOFIIA_INFER_TIMEOUT": str(settings.SOFIIA_INFER_TIMEOUT),
                # Out of the way unless a test is about limits (it then sets its own).
                "SOFIIA_RATE_LIMIT_CHAT": "100000/60",
                "SOFIIA_RATE_LIMIT_OPERATOR": "100000/60",
                "PYTHONUNBUFFERED": "1",
                # Test clients keep responses, and so their connections, open until the test
                # ends; a stopping console would wait out each idle connection's keep-alive.
                "GUNICORN_KEEPALIVE": "1",
            }
        )
        env.update(self.env_overrides)
        return env

    def start(self, *, timeout: float = 60.0) -> LiveConsole:
        log_dir = Path(tempfile.mkdtemp(prefix="sofiia-live-"))
        self.log_path = log_dir / f"gunicorn-{self.port}.log"
        args = [
            sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "sofiia.wsgi:application",
            "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers),
        ]  # fmt: skip
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                args, cwd=PROJECT, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        proc = self.proc

        def answering() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{self.log()}")
            try:
                return requests.get(f"{self.base}/api/health", timeout=2).status_code in (200, 503)
            except requests.RequestException:
                return False

        try:
            wait_until(answering, timeout, what="gunicorn to answer", interval=0.2)
        except AssertionError:
            self.stop()
            raise RuntimeError(f"gunicorn did not answer in {timeout} s:\n{self.log()}") from None
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:] if self.log_path else ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = None
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def session(self, token: str) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        return session
