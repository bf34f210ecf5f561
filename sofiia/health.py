"""Health: ``GET /livez`` (is the process alive?) and ``GET /readyz`` = ``GET /api/health``
(can this instance serve?).

Liveness answers from the process alone, touching no database, Redis or node, so that a
container health check restarts only a process that is really stuck. Readiness checks the
dependencies, for the proxy that routes requests and for operators. The database is
essential (503 without it). A Redis backend that does not answer makes
the instance ``degraded`` but still serving: idempotency falls back on the database
guard, and rate limits fail open or closed as configured.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from sofiia import __version__

logger = logging.getLogger(__name__)

BACKEND_ALIASES = {"idempotency": "SOFIIA_IDEMPOTENCY_BACKEND", "ratelimit": "SOFIIA_RATE_LIMIT_BACKEND"}


# A health probe must answer within its own timeout, not the pool's.
DATABASE_CHECK_TIMEOUT = 0.5


def check_database() -> str:
    """Can this instance reach its database?

    With a connection pool the check borrows a pooled connection, so it never adds a
    connection beyond the pool. A pool whose every connection is out serving requests is
    busy, not down: the check then reports ``ok`` rather than take a loaded instance out of
    the proxy's rotation. An unreachable database makes the pool fail to connect, which
    fails the check within its timeout.
    """
    try:
        pool = getattr(connection, "pool", None)
        if pool is None:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
        else:
            _check_pool(pool)
    except Exception as exc:
        logger.warning("health.database_failed", extra={"error": str(exc)[:300]})
        return "error"
    return "ok"


def _check_pool(pool: Any) -> None:
    from psycopg_pool import PoolTimeout

    pool.open()
    try:
        with pool.connection(timeout=DATABASE_CHECK_TIMEOUT) as raw:
            raw.execute("SELECT 1").fetchone()
    except PoolTimeout:
        # Counters since the last check: a pool that failed to connect in the meantime is
        # not merely busy.
        stats = pool.pop_stats()
        full = stats.get("pool_size", 0) >= stats.get("pool_max", 1) and stats.get("pool_available", 0) == 0
        if full and not stats.get("connections_errors"):
            logger.info("health.database_busy", extra={"waiting": stats.get("requests_waiting", 0)})
            return
        raise


def check_backend(alias: str) -> str:
    """``ok`` or ``degraded`` for the cache that backs ``alias``."""
    if getattr(settings, BACKEND_ALIASES[alias]) != "redis":
        return "ok"
    try:
        from django_redis import get_redis_connection

        get_redis_connection(alias).ping()
    except Exception as exc:
        logger.warning("health.redis_failed", extra={"backend": alias, "error": str(exc)[:300]})
        return "degraded"
    return "ok"


def version() -> str:
    return settings.SOFIIA_VERSION or __version__


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    checks = {"database": check_database()}
    backends = {alias: check_backend(alias) for alias in BACKEND_ALIASES}
    checks["cache"] = "ok" if all(v == "ok" for v in backends.values()) else "degraded"
    checks.update(backends)
    body: dict[str, object] = {
        "status": "ok",
        "checks": checks,
        "backends": {alias: getattr(settings, name) for alias, name in BACKEND_ALIASES.items()},
        "version": version(),
    }
    if checks["database"] != "ok":
        body.update(status="error", error="database_unavailable", detail="The database is unreachable.")
        return JsonResponse(body, status=503)
    if checks["cache"] != "ok":
        body["status"] = "degraded"
    return JsonResponse(body)


@never_cache
@require_GET
def livez(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})
