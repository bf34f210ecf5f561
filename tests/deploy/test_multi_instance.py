"""ops/multi_instance.sh through tests/multi.py: two gunicorn instances on one PostgreSQL
and Redis, each healthy, sharing the database, stopped cleanly."""

from __future__ import annotations

import socket

import pytest
import requests

from tests.live import free_port
from tests.multi import SCRIPT, pair_env, requires_postgres, run_script

pytestmark = pytest.mark.live


def port_is_open(base: str) -> bool:
    host, port = base.removeprefix("http://").split(":")
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, int(port))) == 0


@pytest.mark.postgres
@requires_postgres
def test_both_instances_are_healthy_on_the_redis_backends_with_their_own_metrics(multi_instance):
    pair = multi_instance()
    assert pair.a != pair.b
    for base in pair.bases:
        health = requests.get(f"{base}/api/health", timeout=10)
        assert health.status_code == 200
        assert health.json()["checks"]["database"] == "ok"
        assert health.json()["backends"] == {"idempotency": "redis", "ratelimit": "redis"}
        assert requests.get(f"{base}/metrics", timeout=10).status_code == 200
    assert (pair.state_dir / "a/metrics").is_dir()
    assert (pair.state_dir / "b/metrics").is_dir()


@pytest.mark.postgres
@requires_postgres
def test_a_chat_created_through_a_is_visible_through_b(multi_instance, alice):
    pair = multi_instance()
    http = pair.session(alice.token)
    created = http.post(f"{pair.a}/api/chats", json={"title": "across", "agent": "echo", "node": "NODA2"}, timeout=10)
    assert created.status_code == 201, created.text
    seen = http.get(f"{pair.b}/api/chats/{created.json()['id']}", timeout=10)
    assert seen.status_code == 200
    assert seen.json() == created.json()
    listed = http.get(f"{pair.b}/api/chats", timeout=10).json()["items"]
    assert [chat["id"] for chat in listed] == [created.json()["id"]]


@pytest.mark.postgres
@requires_postgres
def test_status_reports_both_and_stop_leaves_nothing_running(multi_instance):
    pair = multi_instance()
    status = pair.script("status")
    assert status.returncode == 0, status.stdout
    assert [line.split()[:3] for line in status.stdout.splitlines()] == [
        ["PASS", "instance", "a"],
        ["PASS", "instance", "b"],
    ]
    stopped = pair.script("stop")
    assert stopped.returncode == 0
    lines = stopped.stdout.splitlines()
    assert lines[0].startswith("PASS instance a stopped (pid ")
    assert lines[1].startswith("PASS instance b stopped (pid ")
    assert not any(port_is_open(base) for base in pair.bases)
    after = pair.script("status")
    assert after.returncode == 1
    assert after.stdout.splitlines() == ["FAIL instance a is not running", "FAIL instance b is not running"]
    assert not list(pair.state_dir.glob("*.pid"))


def test_start_refuses_a_port_that_is_taken_and_starts_nothing(db, tmp_path):
    # db: should the check ever let the start through, it migrates the test database only.
    env = pair_env(workers=1)
    env["MULTI_DIR"] = str(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env["PORT_B"] = str(taken.getsockname()[1])
        result = run_script("start", env)
    assert result.returncode == 1
    assert result.stdout == f"FAIL port {env['PORT_B']} for instance b is already taken (set PORT_A/PORT_B)\n"
    assert not list(tmp_path.glob("*.pid"))
    assert not port_is_open(f"http://127.0.0.1:{env['PORT_A']}")


def test_an_unknown_command_is_a_usage_error(tmp_path):
    result = run_script("restart", {"PATH": "/usr/bin:/bin", "MULTI_DIR": str(tmp_path), "PORT_A": str(free_port())})
    assert result.returncode == 2
    assert result.stderr == f"usage: {SCRIPT} [start|stop|status]\n"
