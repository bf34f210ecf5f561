"""manage.py preflight and ops/preflight_sofiia_console.sh against a good configuration and
against broken ones: every check fails (or warns) exactly when it should."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from sofiia.settings import DEV_SECRET_KEY, IDEMPOTENCY_CACHE_PREFIX, RATE_LIMIT_CACHE_PREFIX, backend_cache
from tests.audit.helpers import as_intruder, sql
from tests.live import PROJECT, LiveConsole, database_url, free_port

STRONG_KEY = "k" * 20 + "0123456789abcdefghijklmnopqrstuvwxyz"
# A production-like configuration is one on Redis.
pytestmark = pytest.mark.redis

AUDIT_KEY = "audit-key-" + "x" * 40


@pytest.fixture
def good(settings, db):
    """A production-like configuration: every check passes."""
    settings.DEBUG = False
    settings.SECRET_KEY = STRONG_KEY
    settings.ALLOWED_HOSTS = ["console.example.org"]
    settings.SOFIIA_AUDIT_KEYS = [AUDIT_KEY]
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    settings.SOFIIA_IDEMPOTENCY_BACKEND = settings.SOFIIA_RATE_LIMIT_BACKEND = "redis"
    settings.CACHES = {
        **settings.CACHES,
        "idempotency": backend_cache("redis", IDEMPOTENCY_CACHE_PREFIX),
        "ratelimit": backend_cache("redis", RATE_LIMIT_CACHE_PREFIX),
    }
    return settings


def preflight(*args: str) -> tuple[dict[str, tuple[str, str]], str, bool]:
    """Run the command; return {check: (verdict, detail)}, the summary line, and whether it failed."""
    out = StringIO()
    failed = False
    try:
        call_command("preflight", *args, stdout=out)
    except CommandError as error:
        failed = True
        summary = str(error)
    lines = out.getvalue().strip().splitlines()
    checks = {}
    for line in lines:
        if line[:4] in ("PASS", "WARN", "FAIL"):
            name, _, detail = line[6:].partition(" — ")
            checks[name] = (line[:4], detail)
    if not failed:
        summary = lines[-1]
    return checks, summary, failed


def test_a_good_configuration_passes_strict(good):
    checks, summary, failed = preflight("--strict", "--workers", "4", "--instances", "2")
    assert not failed, checks
    assert {verdict for verdict, _ in checks.values()} == {"PASS"}
    assert set(checks) == {
        "debug", "secret key", "allowed hosts", "database", "idempotency backend", "ratelimit backend",
        "audit keys", "audit chain key", "node NODA1", "node NODA2", "check --deploy", "audit chain",
    }  # fmt: skip
    assert summary == "preflight PASS: 12 passed, 0 warning(s), 0 failure(s)"


@pytest.mark.parametrize(
    ("change", "check", "verdict", "reason"),
    [
        ({"DEBUG": True}, "debug", "FAIL", "DJANGO_DEBUG is on"),
        ({"SECRET_KEY": DEV_SECRET_KEY}, "secret key", "FAIL", "development key"),
        ({"SECRET_KEY": "short"}, "secret key", "FAIL", "too weak"),
        ({"SECRET_KEY": "a" * 60}, "secret key", "FAIL", "too weak"),
        ({"ALLOWED_HOSTS": []}, "allowed hosts", "FAIL", "empty"),
        ({"ALLOWED_HOSTS": ["*"]}, "allowed hosts", "FAIL", "any Host"),
        ({"SOFIIA_AUDIT_KEYS": []}, "audit keys", "FAIL", "refuses everyone"),
        ({"SOFIIA_AUDIT_KEYS": [AUDIT_KEY, "short"]}, "audit keys", "FAIL", "1 key(s) shorter than 32"),
        ({"SESSION_COOKIE_SECURE": False}, "check --deploy", "WARN", "security.W012"),
        ({"SOFIIA_AUDIT_CHAIN_KEYS": []}, "audit chain key", "WARN", "derived from DJANGO_SECRET_KEY"),
    ],
)  # fmt: skip
def test_a_broken_setting_fails_its_check(good, change, check, verdict, reason):
    for name, value in change.items():
        setattr(good, name, value)
    checks, _, failed = preflight()
    assert checks[check][0] == verdict
    assert reason in checks[check][1]
    assert failed == (verdict == "FAIL")
    others = {name: v for name, (v, _) in checks.items() if name not in (check, "check --deploy")}
    assert set(others.values()) == {"PASS"}, others


def test_only_loopback_hosts_warn_and_fail_strict(good):
    good.ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    checks, _, failed = preflight()
    assert checks["allowed hosts"][0] == "WARN"
    assert not failed
    _, summary, strict_failed = preflight("--strict")
    assert strict_failed
    assert summary == "preflight WARN: 11 passed, 1 warning(s), 0 failure(s) (strict)"


def test_in_memory_backends_warn_when_several_processes_share_the_configuration(good, settings):
    settings.SOFIIA_IDEMPOTENCY_BACKEND = settings.SOFIIA_RATE_LIMIT_BACKEND = "inmemory"
    one, _, _ = preflight("--workers", "1", "--instances", "1")
    assert one["idempotency backend"] == ("PASS", "inmemory, one process")
    many, _, failed = preflight("--workers", "4", "--instances", "1")
    assert many["idempotency backend"][0] == many["ratelimit backend"][0] == "WARN"
    assert "4 worker(s) x 1 instance(s)" in many["ratelimit backend"][1]
    assert not failed
    _, _, strict_failed = preflight("--strict", "--workers", "1", "--instances", "2")
    assert strict_failed


def test_an_unreachable_redis_fails_the_backend_checks(good, settings, disposable_redis):
    settings.CACHES = {**settings.CACHES, "ratelimit": disposable_redis.cache_settings()}
    disposable_redis.stop()
    checks, _, failed = preflight()
    assert failed
    assert checks["ratelimit backend"][0] == "FAIL"
    assert "does not answer" in checks["ratelimit backend"][1]
    assert checks["idempotency backend"][0] == "PASS"


def test_a_node_that_does_not_answer_fails(good, settings):
    settings.SOFIIA_NODES = {**settings.SOFIIA_NODES, "NODA3": f"http://127.0.0.1:{free_port()}"}
    checks, _, failed = preflight()
    assert failed
    assert checks["node NODA3"][0] == "FAIL"
    assert checks["node NODA1"][0] == "PASS"


def test_the_redis_password_is_never_printed(good, settings):
    from sofiia.preflight import _redacted

    assert _redacted("redis://:s3cret@redis:6379/0") == "redis://***@redis:6379/0"
    assert _redacted("redis://app:s3cret@redis:6379/0") == "redis://app:***@redis:6379/0"
    assert _redacted("redis://redis:6379/0") == "redis://redis:6379/0"


def _script_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOFIIA_", "DJANGO_", "DATABASE_URL"))}
    env.update(LiveConsole().env())
    env.update(
        {
            "DJANGO_ALLOWED_HOSTS": "console.example.org",
            "DJANGO_SECURE_COOKIES": "1",
            "SOFIIA_AUDIT_KEYS": AUDIT_KEY,
            "SOFIIA_IDEMPOTENCY_BACKEND": "redis",
            "SOFIIA_RATE_LIMIT_BACKEND": "redis",
        }
    )
    env.update(overrides)
    return env


def run_script(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PROJECT / "ops" / "preflight_sofiia_console.sh")],
        env=_script_env(PYTHON=sys.executable, **env), capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_the_ops_script_passes_strict_on_a_good_configuration():
    result = run_script(STRICT="1", GUNICORN_WORKERS="4", SOFIIA_INSTANCES="2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("preflight PASS")


@pytest.mark.django_db(transaction=True)
def test_the_ops_script_fails_strict_on_a_warning_only():
    relaxed = run_script(SOFIIA_IDEMPOTENCY_BACKEND="inmemory")
    assert relaxed.returncode == 0, relaxed.stdout + relaxed.stderr
    strict = run_script(STRICT="1", SOFIIA_IDEMPOTENCY_BACKEND="inmemory")
    assert strict.returncode == 1
    assert "WARN  idempotency backend" in strict.stdout


@pytest.mark.django_db(transaction=True)
def test_the_ops_script_fails_on_an_unreachable_database():
    result = run_script(DATABASE_URL="postgres://postgres@127.0.0.1:1/nothing")
    assert result.returncode == 1
    assert "FAIL  database — unreachable" in result.stdout


@pytest.mark.django_db(transaction=True)
def test_the_ops_script_fails_on_an_unmigrated_database(tmp_path):
    result = run_script(DATABASE_URL=f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    assert result.returncode == 1
    assert "not applied" in result.stdout
    assert database_url() not in result.stdout


def test_a_broken_audit_chain_fails(good, alice):
    from audit.models import AuditEvent
    from chats.services import chat_create

    chat_create(operator=alice.user, title="t", agent="echo")
    event = AuditEvent.objects.get(action="chat.create")
    tampered = {**event.details, "title": "rewritten"}
    with as_intruder():
        sql("UPDATE audit_auditevent SET details = %s WHERE id = %s", [json.dumps(tampered), event.id])
    checks, _, failed = preflight()
    assert failed
    assert checks["audit chain"][0] == "FAIL"
    assert f"event #{event.id}" in checks["audit chain"][1]
