"""Release preflight: is this configuration fit to serve, and is its audit trail intact?
One verdict per check.

Each check returns PASS, WARN or FAIL with a short reason. ``manage.py preflight`` prints
them and fails on a FAIL (and, with ``--strict``, on a WARN too).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from django.conf import settings
from django.core import checks as django_checks
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from audit.chain import chain_verify
from audit.chain_keys import chain_keys, signing_key
from nodes.registry import node_names, node_probe
from sofiia.health import check_backend

Verdict = Literal["PASS", "WARN", "FAIL"]

MIN_SECRET_KEY_LENGTH = 50
MIN_AUDIT_KEY_LENGTH = 32
NODE_PROBE_TIMEOUT = 3.0
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
# clearsessions runs daily (README, "Operations"): a session expired longer ago than this
# means it does not run.
EXPIRED_SESSIONS_GRACE = timedelta(days=1)
NON_EVICTING_POLICY = "noeviction"


@dataclass(frozen=True)
class Check:
    name: str
    verdict: Verdict
    detail: str

    def line(self) -> str:
        return f"{self.verdict}  {self.name} — {self.detail}"


@dataclass(frozen=True)
class Deployment:
    """What the configuration will run as: workers per instance and instances."""

    workers: int
    instances: int

    @property
    def processes(self) -> int:
        return self.workers * self.instances


def check_debug() -> Check:
    if settings.DEBUG:
        return Check("debug", "FAIL", "DJANGO_DEBUG is on: tracebacks and settings would be shown to clients")
    return Check("debug", "PASS", "off")


def check_secret_key() -> Check:
    key: str = settings.SECRET_KEY
    if key == settings.DEV_SECRET_KEY:
        return Check("secret key", "FAIL", "the development key is in use: set DJANGO_SECRET_KEY")
    if len(key) < MIN_SECRET_KEY_LENGTH or len(set(key)) < 5:
        return Check("secret key", "FAIL", f"too weak: use at least {MIN_SECRET_KEY_LENGTH} random characters")
    return Check("secret key", "PASS", f"set, {len(key)} characters")


def check_allowed_hosts() -> Check:
    hosts: list[str] = settings.ALLOWED_HOSTS
    if not hosts:
        return Check("allowed hosts", "FAIL", "DJANGO_ALLOWED_HOSTS is empty: every request would be refused")
    if "*" in hosts:
        return Check("allowed hosts", "FAIL", "'*' accepts any Host header")
    if set(hosts) <= _LOOPBACK_HOSTS:
        return Check("allowed hosts", "WARN", "only loopback names: the console answers no public name")
    return Check("allowed hosts", "PASS", ", ".join(hosts))


def check_database() -> Check:
    connection = connections[DEFAULT_DB_ALIAS]
    try:
        connection.ensure_connection()
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as exc:
        return Check("database", "FAIL", f"unreachable: {str(exc).strip().splitlines()[0][:200]}")
    vendor = connection.vendor
    if plan:
        pending = ", ".join(f"{m.app_label}.{m.name}" for m, _ in plan[:5])
        return Check("database", "FAIL", f"{vendor}: {len(plan)} migration(s) not applied ({pending})")
    return Check("database", "PASS", f"{vendor}, reachable, migrated")


def _backend_check(alias: str, setting: str, deployment: Deployment) -> Check:
    name = f"{alias} backend"
    backend: str = getattr(settings, setting)
    if backend == "redis":
        if check_backend(alias) != "ok":
            url = settings.CACHES[alias].get("LOCATION", settings.SOFIIA_REDIS_URL)
            return Check(name, "FAIL", f"redis at {_redacted(str(url))} does not answer")
        return Check(name, "PASS", "redis, reachable")
    if deployment.processes > 1:
        return Check(
            name,
            "WARN",
            f"inmemory with {deployment.workers} worker(s) x {deployment.instances} instance(s): "
            "state is not shared between processes; use redis",
        )
    return Check(name, "PASS", "inmemory, one process")


def _redacted(url: str) -> str:
    """The URL without its password."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user + ':***@' if user else '***@'}{host}"


@dataclass(frozen=True)
class RedisServer:
    run_id: str
    address: str
    policy: str


def _redis_server(alias: str) -> RedisServer:
    from django_redis import get_redis_connection

    client: Any = get_redis_connection(alias)
    info = client.info("server")
    policy = client.config_get("maxmemory-policy").get("maxmemory-policy", "")
    kwargs = client.connection_pool.connection_kwargs
    address = kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}"
    return RedisServer(run_id=str(info.get("run_id", address)), address=address, policy=policy)


def check_redis_eviction() -> Check:
    """Can a full Redis evict rate-limit windows (to make room for idempotency records, or for
    each other)? Eviction is per server, across its databases: windows are safe only on a
    server that evicts nothing (``noeviction``). Idempotency records may be evicted (the
    database replays them), so a server of their own may use ``allkeys-lru``."""
    name = "redis eviction"
    idempotency = settings.SOFIIA_IDEMPOTENCY_BACKEND == "redis"
    ratelimit = settings.SOFIIA_RATE_LIMIT_BACKEND == "redis"
    if not ratelimit:
        return Check(name, "PASS", "rate-limit windows are not on Redis")
    try:
        windows = _redis_server("ratelimit")
        records = _redis_server("idempotency") if idempotency else None
    except Exception as exc:
        return Check(name, "WARN", f"cannot read maxmemory-policy ({type(exc).__name__}): check it by hand")
    shared = records is not None and records.run_id == windows.run_id
    if windows.policy == NON_EVICTING_POLICY:
        where = "shared with idempotency records" if shared else "rate-limit windows only"
        return Check(name, "PASS", f"{windows.address}: noeviction ({where})")
    if shared:
        return Check(
            name,
            "FAIL",
            f"{windows.address}: maxmemory-policy {windows.policy} holds idempotency records and rate-limit "
            "windows: a full Redis can evict windows and reset limits. Use noeviction, or give "
            "SOFIIA_IDEMPOTENCY_REDIS_URL a server of its own",
        )
    return Check(
        name,
        "WARN",
        f"{windows.address}: maxmemory-policy {windows.policy}: a full Redis can evict rate-limit windows; "
        "use noeviction",
    )


def check_expired_sessions() -> Check:
    from django.contrib.sessions.models import Session

    cutoff = timezone.now() - EXPIRED_SESSIONS_GRACE
    try:
        stale = Session.objects.filter(expire_date__lt=cutoff).count()
    except DatabaseError as exc:
        return Check("expired sessions", "FAIL", f"cannot be read: {str(exc).strip().splitlines()[0][:200]}")
    if stale:
        return Check(
            "expired sessions",
            "WARN",
            f"{stale:,} session(s) expired over a day ago: schedule `manage.py clearsessions` daily",
        )
    return Check("expired sessions", "PASS", "none expired over a day ago (clearsessions runs)")


def check_audit_keys() -> Check:
    keys: list[str] = settings.SOFIIA_AUDIT_KEYS
    if not keys:
        return Check("audit keys", "FAIL", "SOFIIA_AUDIT_KEYS is empty: the audit API refuses everyone")
    short = sum(1 for key in keys if len(key) < MIN_AUDIT_KEY_LENGTH)
    if short:
        return Check("audit keys", "FAIL", f"{short} key(s) shorter than {MIN_AUDIT_KEY_LENGTH} characters")
    return Check("audit keys", "PASS", f"{len(keys)} key(s)")


def check_nodes() -> Iterator[Check]:
    for name in node_names():
        status = node_probe(name, timeout=NODE_PROBE_TIMEOUT)
        if status.status == "up":
            yield Check(f"node {name}", "PASS", f"up, {status.latency_ms} ms")
        else:
            yield Check(f"node {name}", "FAIL", f"{settings.SOFIIA_NODES[name]}/health does not answer 200")


def check_audit_chain() -> Check:
    try:
        report = chain_verify()
    except DatabaseError as exc:
        return Check("audit chain", "FAIL", f"cannot be read: {str(exc).strip().splitlines()[0][:200]}")
    if report.broken is not None:
        return Check("audit chain", "FAIL", f"broken: {report.broken}")
    return Check("audit chain", "PASS", f"verifies, {report.checked:,} event(s) from the anchor")


def check_audit_chain_key() -> Check:
    key = signing_key()
    if key.derived:
        return Check(
            "audit chain key",
            "WARN",
            "derived from DJANGO_SECRET_KEY: set SOFIIA_AUDIT_CHAIN_KEY so the chain keeps its key "
            "when the secret key rotates",
        )
    return Check("audit chain key", "PASS", f"{key.key_id} signs, {len(chain_keys())} key(s) verify")


def check_deploy() -> Check:
    messages = django_checks.run_checks(include_deployment_checks=True)
    errors = [m for m in messages if m.is_serious() and not m.is_silenced()]
    warnings = [m for m in messages if not m.is_serious() and not m.is_silenced()]
    if errors:
        return Check("check --deploy", "FAIL", "; ".join(f"{m.id}: {m.msg}" for m in errors)[:400])
    if warnings:
        return Check("check --deploy", "WARN", ", ".join(str(m.id) for m in warnings))
    return Check("check --deploy", "PASS", "no issues")


def run_preflight(deployment: Deployment) -> list[Check]:
    return [
        check_debug(),
        check_secret_key(),
        check_allowed_hosts(),
        check_database(),
        _backend_check("idempotency", "SOFIIA_IDEMPOTENCY_BACKEND", deployment),
        _backend_check("ratelimit", "SOFIIA_RATE_LIMIT_BACKEND", deployment),
        check_redis_eviction(),
        check_expired_sessions(),
        check_audit_keys(),
        check_audit_chain_key(),
        *check_nodes(),
        check_deploy(),
        check_audit_chain(),
    ]


def summary(results: list[Check]) -> str:
    counts = {verdict: sum(1 for r in results if r.verdict == verdict) for verdict in ("PASS", "WARN", "FAIL")}
    overall = "FAIL" if counts["FAIL"] else ("WARN" if counts["WARN"] else "PASS")
    return f"{overall}: {counts['PASS']} passed, {counts['WARN']} warning(s), {counts['FAIL']} failure(s)"
