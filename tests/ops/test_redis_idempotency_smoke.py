"""ops/redis_idempotency_smoke.sh against live instances: PASS when they share Redis, FAIL with
the reason otherwise."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.live import PROJECT, free_port
from tests.personas import make_persona

pytestmark = [pytest.mark.live, pytest.mark.redis]

SCRIPT = PROJECT / "ops" / "redis_idempotency_smoke.sh"
REDIS = {"SOFIIA_IDEMPOTENCY_BACKEND": "redis", "SOFIIA_RATE_LIMIT_BACKEND": "redis"}


def run_smoke(*args: str, token: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SOFIIA_TOKEN"}
    if token is not None:
        env["SOFIIA_TOKEN"] = token
    return subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=120)


def verdicts(output: str) -> dict[str, str]:
    lines = [line for line in output.splitlines() if line.startswith(("PASS  ", "FAIL  "))]
    return {line[6:].split(" — ")[0]: line[:4] for line in lines}


def test_it_passes_against_two_instances_sharing_redis(live_console):
    alice = make_persona("alice")
    a, b = live_console(workers=2, **REDIS), live_console(workers=2, **REDIS)
    result = run_smoke(a.base, b.base, token=alice.token)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == "PASS"
    assert verdicts(result.stdout) == {
        "instance A uses redis for idempotency": "PASS",
        "instance B uses redis for idempotency": "PASS",
        "send through A": "PASS",
        "replay through B": "PASS",
        "identical body": "PASS",
        "single stored message": "PASS",
    }
    assert alice.token not in result.stdout + result.stderr


def test_it_fails_naming_the_in_memory_backend(live_console):
    alice = make_persona("alice")
    memory = {"SOFIIA_IDEMPOTENCY_BACKEND": "inmemory"}
    a, b = live_console(workers=1, **memory), live_console(workers=1, **memory)
    result = run_smoke(a.base, b.base, token=alice.token)
    assert result.returncode == 1
    assert result.stdout.strip().splitlines()[-1].startswith("FAIL")
    assert "idempotency backend is 'inmemory'" in result.stdout
    # Separate in-memory caches: B runs the view again and the database answers the replay,
    # so the message is still stored once.
    assert verdicts(result.stdout)["single stored message"] == "PASS"


def test_it_fails_when_an_instance_is_down(live_console):
    alice = make_persona("alice")
    a = live_console(workers=1, **REDIS)
    result = run_smoke(a.base, f"http://127.0.0.1:{free_port()}", token=alice.token)
    assert result.returncode == 1
    checks = verdicts(result.stdout)
    assert checks["instance B uses redis for idempotency"] == "FAIL"
    assert checks["replay through B"] == "FAIL"
    assert "Connection refused" in result.stdout or "URLError" in result.stdout


def test_it_fails_without_a_token_or_with_a_wrong_one(live_console):
    a = live_console(workers=1, **REDIS)
    missing = run_smoke(a.base, a.base, token=None)
    assert missing.returncode == 1
    assert "SOFIIA_TOKEN is not set" in missing.stdout
    wrong = run_smoke(a.base, a.base, token="not-a-token")
    assert wrong.returncode == 1
    assert "answered 401" in wrong.stdout


def test_it_needs_two_bases():
    result = run_smoke("http://127.0.0.1:1", token="t")
    assert result.returncode == 1
    assert "usage:" in result.stderr
    bad = run_smoke("ftp://x", "http://127.0.0.1:1", token="t")
    assert bad.returncode != 0
