"""ops/generate_release_evidence.sh end to end against two live consoles on Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.live import PROJECT, LiveConsole
from tests.personas import make_persona

pytestmark = [pytest.mark.live, pytest.mark.redis]

SCRIPT = PROJECT / "ops" / "generate_release_evidence.sh"
AUDIT_KEY = "evidence-audit-key-" + "e" * 32
REDIS = {"SOFIIA_IDEMPOTENCY_BACKEND": "redis", "SOFIIA_RATE_LIMIT_BACKEND": "redis", "SOFIIA_AUDIT_KEYS": AUDIT_KEY}


def release_env(token: str, out_dir: Path) -> dict[str, str]:
    """The release's own environment: production settings on the test database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOFIIA_", "DJANGO_", "DATABASE_URL"))}
    env.update(LiveConsole(env_overrides=REDIS).env())
    env.update(
        DJANGO_ALLOWED_HOSTS="console.example.org,127.0.0.1",
        DJANGO_SECURE_COOKIES="1",
        GUNICORN_WORKERS="2",
        SOFIIA_INSTANCES="2",
        SOFIIA_TOKEN=token,
        SOFIIA_AUDIT_KEY=AUDIT_KEY,
        PYTHON=sys.executable,
        OUT_DIR=str(out_dir),
    )
    return env


def git_short_sha() -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"], cwd=PROJECT, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_a_healthy_release_is_go_with_every_section(live_console, tmp_path):
    alice = make_persona("alice")
    a, b = live_console(workers=2, **REDIS), live_console(workers=2, **REDIS)
    result = subprocess.run(
        [str(SCRIPT), a.base, b.base], env=release_env(alice.token, tmp_path), capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == "GO"
    evidence = tmp_path / f"{datetime.now(tz=UTC):%Y-%m-%d}-{git_short_sha()}.md"
    text = evidence.read_text()
    for section in ("Versions", "Preflight (strict)", "Smoke", "Redis idempotency A/B smoke", "Migration plan",
                    "Counters", "Audit chain verification", "Retention dry-run", "Verdict"):  # fmt: skip
        assert f"\n## {section}\n" in text, section
    assert "**GO**" in text
    assert "preflight PASS" in text
    assert "Django 5.2" in text
    assert "sofiia_idempotency_requests_total" in text
    assert "No planned migration operations." in text
    assert alice.token not in text
    assert AUDIT_KEY not in text


def test_without_a_second_instance_it_is_no_go(live_console, tmp_path):
    alice = make_persona("alice")
    a = live_console(workers=2, **REDIS)
    result = subprocess.run(
        [str(SCRIPT), a.base], env=release_env(alice.token, tmp_path), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1
    assert result.stdout.strip().splitlines()[-1] == "NO-GO"
    text = next(tmp_path.glob("*.md")).read_text()
    assert "**NO-GO** — failed: Redis idempotency A/B smoke (not run)" in text


def test_it_needs_a_base():
    result = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "usage:" in result.stderr
