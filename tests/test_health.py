from __future__ import annotations

import pytest
import requests

from sofiia import __version__


def test_health_reports_each_check(db, client, settings):
    response = client.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "cache": "ok", "idempotency": "ok", "ratelimit": "ok"},
        "backends": {
            "idempotency": settings.SOFIIA_IDEMPOTENCY_BACKEND,
            "ratelimit": settings.SOFIIA_RATE_LIMIT_BACKEND,
        },
        "version": __version__,
    }
    assert "no-cache" in response["Cache-Control"]


def test_health_needs_no_operator_and_no_csrf(db):
    from django.test import Client

    assert Client(enforce_csrf_checks=True).get("/api/health").status_code == 200


@pytest.mark.live
def test_health_is_503_naming_the_database_when_it_is_unreachable(live_console):
    console = live_console(workers=1, DATABASE_URL="postgres://postgres@127.0.0.1:1/nothing")
    response = requests.get(f"{console.base}/api/health", timeout=30)
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"] == "error"
    assert body["error"] == "database_unavailable"
    assert body["status"] == "error"


@pytest.mark.redis
def test_an_unreachable_redis_makes_health_degraded_not_down(db, client, settings):
    from tests.live import free_port

    settings.SOFIIA_IDEMPOTENCY_BACKEND = "redis"
    settings.CACHES = {
        **settings.CACHES,
        "idempotency": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        },
    }
    response = client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["cache"] == "degraded"
    assert body["checks"]["idempotency"] == "degraded"
    assert body["checks"]["database"] == "ok"
