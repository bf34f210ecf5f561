"""Two console instances on the test database, started by ops/multi_instance.sh, for tests
of behaviour across instances: a send on A replayed on B, rate limits shared through Redis.

    from tests.multi import requires_postgres

    @requires_postgres
    def test_a_replay_on_b(multi_instance, alice):
        pair = multi_instance(SOFIIA_RATE_LIMIT_CHAT="3/60")   # extra environment for both
        http = pair.session(alice.token)
        http.post(f"{pair.a}/api/chats", json=...)

The ``multi_instance`` fixture (tests/conftest.py) needs a transactional database, so rows
the test writes are visible to the instances; it stops both at teardown. Both run on the
Redis backends unless the test says otherwise, each with its own metrics directory.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from django.db import connection

from tests.live import PROJECT, LiveConsole, free_port

SCRIPT = PROJECT / "ops/multi_instance.sh"
POSTGRES_ONLY = "multi-instance mode runs on a shared PostgreSQL database: set DATABASE_URL=postgres://…"
requires_postgres = pytest.mark.skipif(connection.vendor != "postgresql", reason=POSTGRES_ONLY)


@dataclass(frozen=True)
class MultiInstance:
    a: str
    b: str
    state_dir: Path
    env: dict[str, str]

    @property
    def bases(self) -> tuple[str, str]:
        return self.a, self.b

    def log(self, instance: str) -> str:
        """The last lines of instance ``a``'s or ``b``'s log (JSON lines)."""
        return (self.state_dir / f"{instance}.log").read_text(errors="replace")[-5000:]

    def script(self, command: str) -> subprocess.CompletedProcess[str]:
        """Run ``ops/multi_instance.sh COMMAND`` (``status``, ``stop``) against this pair."""
        return run_script(command, self.env)

    def session(self, token: str) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        return session


def run_script(command: str, env: dict[str, str], *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), command], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def pair_env(*, workers: int, **overrides: str) -> dict[str, str]:
    """The environment of both instances: the test database and settings, then ``overrides``."""
    env = LiveConsole(
        env_overrides={"SOFIIA_IDEMPOTENCY_BACKEND": "redis", "SOFIIA_RATE_LIMIT_BACKEND": "redis", **overrides}
    ).env()
    env.pop("DEV_NODES", None)  # the tests' own dev routers are the nodes
    port_a = free_port()
    port_b = free_port()
    while port_b == port_a:
        port_b = free_port()
    env.update(
        PYTHON=sys.executable,
        HOST="127.0.0.1",
        PORT_A=str(port_a),
        PORT_B=str(port_b),
        GUNICORN_WORKERS=str(workers),
        COLLECTSTATIC="0",
        MULTI_DIR=tempfile.mkdtemp(prefix="sofiia-multi-"),
    )
    return env


@contextmanager
def run_multi_instance(*, workers: int = 1, **env: str) -> Iterator[MultiInstance]:
    """Start instances A and B on the test database; stop them (and remove their state) on exit."""
    if connection.vendor != "postgresql":
        pytest.skip(POSTGRES_ONLY)
    environment = pair_env(workers=workers, **env)
    state_dir = Path(environment["MULTI_DIR"])
    started = run_script("start", environment)
    if started.returncode != 0:
        shutil.rmtree(state_dir, ignore_errors=True)
        raise RuntimeError(f"ops/multi_instance.sh start failed:\n{started.stdout}{started.stderr}")
    bases = dict(re.findall(r"^(BASE_[AB])=(\S+)$", started.stdout, flags=re.MULTILINE))
    try:
        yield MultiInstance(a=bases["BASE_A"], b=bases["BASE_B"], state_dir=state_dir, env=environment)
    finally:
        run_script("stop", environment)
        shutil.rmtree(state_dir, ignore_errors=True)
