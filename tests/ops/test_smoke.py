"""ops/smoke.sh against live consoles: PASS on a healthy one, FAIL with the reason otherwise."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.live import PROJECT, free_port
from tests.personas import make_persona

pytestmark = pytest.mark.live

SCRIPT = PROJECT / "ops" / "smoke.sh"
AUDIT_KEY = "smoke-audit-key-" + "s" * 32


def run_smoke(base: str, *, token: str | None, audit_key: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SOFIIA_TOKEN", "SOFIIA_AUDIT_KEY")}
    if token is not None:
        env["SOFIIA_TOKEN"] = token
    if audit_key is not None:
        env["SOFIIA_AUDIT_KEY"] = audit_key
    return subprocess.run([str(SCRIPT), base], env=env, capture_output=True, text=True, timeout=120)


def verdicts(output: str) -> dict[str, str]:
    lines = [line for line in output.splitlines() if line.startswith(("PASS  ", "FAIL  "))]
    return {line[6:].split(" — ")[0]: line[:4] for line in lines}


def test_it_passes_against_a_healthy_console(live_console):
    alice = make_persona("alice")
    console = live_console(workers=2, SOFIIA_AUDIT_KEYS=AUDIT_KEY)
    result = run_smoke(console.base, token=alice.token, audit_key=AUDIT_KEY)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == "PASS"
    assert set(verdicts(result.stdout).values()) == {"PASS"}
    assert set(verdicts(result.stdout)) == {
        "health", "metrics", "audit without key is refused", "audit with key is served", "send", "send replay",
    }  # fmt: skip
    assert alice.token not in result.stdout + result.stderr
    assert AUDIT_KEY not in result.stdout + result.stderr


def test_it_fails_when_the_audit_key_is_wrong(live_console):
    alice = make_persona("alice")
    console = live_console(workers=1, SOFIIA_AUDIT_KEYS=AUDIT_KEY)
    result = run_smoke(console.base, token=alice.token, audit_key="not-the-key-" + "n" * 30)
    assert result.returncode == 1
    assert verdicts(result.stdout)["audit with key is served"] == "FAIL"
    assert "answered 401 instead of 200" in result.stdout
    assert result.stdout.strip().splitlines()[-1].startswith("FAIL")


def test_it_fails_when_the_node_is_down(live_console):
    alice = make_persona("alice")
    console = live_console(workers=1, SOFIIA_AUDIT_KEYS=AUDIT_KEY, SOFIIA_NODES=f"NODA1=http://127.0.0.1:{free_port()}")
    result = run_smoke(console.base, token=alice.token, audit_key=AUDIT_KEY)
    assert result.returncode == 1
    checks = verdicts(result.stdout)
    assert checks["health"] == "PASS"
    assert checks["send"] == "FAIL"
    assert "send answered 502" in result.stdout


def test_it_fails_when_the_console_is_down():
    result = run_smoke(f"http://127.0.0.1:{free_port()}", token="t", audit_key="k")
    assert result.returncode == 1
    assert set(verdicts(result.stdout).values()) == {"FAIL"}
