"""``GET /api/health``: is this instance able to serve?

The database is essential (503 without it). A Redis backend that does not answer makes
the instance ``degraded`` but still serving: idempotency falls back on the database
guard, and rate limits fail open or closed as configured.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from sofiia import __version__

logger = logging.getLogger(__name__)

BACKEND_ALIASES = {"idempotency": "SOFIIA_IDEMPOTENCY_BACKEND", "ratelimit": "SOFIIA_RATE_LIMIT_BACKEND"}


def check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        logger.warning("health.database_failed", extra={"error": str(exc)[:300]})
        return "error"
    return "ok"


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
