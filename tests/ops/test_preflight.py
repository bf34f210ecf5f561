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
        "redis eviction", "expired sessions", "audit keys", "audit chain key", "node NODA1", "node NODA2",
        "check --deploy", "audit chain",
    }  # fmt: skip
    assert summary == "preflight PASS: 14 passed, 0 warning(s), 0 failure(s)"


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
    assert summary == "preflight WARN: 13 passed, 1 warning(s), 0 failure(s) (strict)"


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


# --- Redis eviction and expired sessions ------------------------------------------------


@pytest.fixture
def own_redis(good, settings, disposable_redis):
    """Idempotency records and rate-limit windows on a disposable Redis of the test's own,
    whose eviction policy it may change (never the shared server's)."""

    def use(policy: str, *, windows_elsewhere: bool = False) -> None:
        import redis

        redis.Redis.from_url(disposable_redis.url).config_set("maxmemory-policy", policy)
        settings.CACHES = {
            **settings.CACHES,
            "idempotency": backend_cache("redis", IDEMPOTENCY_CACHE_PREFIX, disposable_redis.url),
            "ratelimit": backend_cache(
                "redis",
                RATE_LIMIT_CACHE_PREFIX,
                settings.SOFIIA_REDIS_URL if windows_elsewhere else disposable_redis.url,
            ),
        }

    return use


@pytest.mark.parametrize("policy", ["allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-ttl"])
def test_an_evicting_redis_shared_by_records_and_windows_fails(own_redis, policy):
    own_redis(policy)
    checks, _, failed = preflight()
    assert failed
    verdict, detail = checks["redis eviction"]
    assert verdict == "FAIL"
    assert f"maxmemory-policy {policy}" in detail
    assert "SOFIIA_IDEMPOTENCY_REDIS_URL" in detail


def test_a_shared_redis_that_evicts_nothing_passes(own_redis):
    own_redis("noeviction")
    checks, _, failed = preflight()
    assert not failed
    assert checks["redis eviction"] == ("PASS", checks["redis eviction"][1])
    assert "noeviction (shared with idempotency records)" in checks["redis eviction"][1]


def test_records_on_an_evicting_server_of_their_own_leave_the_windows_safe(own_redis):
    # The windows stay on the shared test server (noeviction: its policy is only read here).
    own_redis("allkeys-lru", windows_elsewhere=True)
    checks, _, failed = preflight("--strict")
    assert not failed, checks
    assert "noeviction (rate-limit windows only)" in checks["redis eviction"][1]


def test_windows_alone_on_an_evicting_server_warn(good, settings, disposable_redis):
    import redis

    redis.Redis.from_url(disposable_redis.url).config_set("maxmemory-policy", "volatile-lru")
    settings.CACHES = {
        **settings.CACHES,
        "ratelimit": backend_cache("redis", RATE_LIMIT_CACHE_PREFIX, disposable_redis.url),
    }
    checks, _, _ = preflight()
    assert checks["redis eviction"][0] == "WARN"
    assert "can evict rate-limit windows" in checks["redis eviction"][1]


def test_idempotency_and_rate_limits_take_redis_urls_of_their_own():
    script = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.CACHES['idempotency']['LOCATION'], s.CACHES['ratelimit']['LOCATION'])"
    )
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "sofiia.settings",
        "SOFIIA_REDIS_URL": "redis://shared:6379/0",
        "SOFIIA_IDEMPOTENCY_BACKEND": "redis",
        "SOFIIA_RATE_LIMIT_BACKEND": "redis",
        "SOFIIA_IDEMPOTENCY_REDIS_URL": "redis://records:6379/1",
    }
    run = subprocess.run([sys.executable, "-c", script], cwd=PROJECT, env=env, capture_output=True, text=True)
    assert run.stdout.split() == ["redis://records:6379/1", "redis://shared:6379/0"], run.stderr[-500:]
    bad = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT,
        env={**env, "SOFIIA_RATE_LIMIT_REDIS_URL": "http://limits"},
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0
    assert "SOFIIA_RATE_LIMIT_REDIS_URL: expected a redis:// URL" in bad.stderr


def test_sessions_expired_over_a_day_ago_warn_until_clearsessions_runs(good):
    from datetime import timedelta

    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.utils import timezone

    store = SessionStore()
    store["kept"] = True
    store.create()
    Session.objects.filter(session_key=store.session_key).update(expire_date=timezone.now() - timedelta(days=2))
    checks, _, failed = preflight()
    assert checks["expired sessions"][0] == "WARN"
    assert "1 session(s) expired over a day ago" in checks["expired sessions"][1]
    assert not failed
    call_command("clearsessions")
    checks, _, _ = preflight("--strict")
    assert checks["expired sessions"][0] == "PASS"
    assert not Session.objects.exists()
