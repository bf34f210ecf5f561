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


def test_readyz_is_the_health_check_under_another_name(db, client):
    ready, health = client.get("/readyz"), client.get("/api/health")
    assert ready.status_code == health.status_code == 200
    assert ready.json() == health.json()


def test_livez_answers_from_the_process_alone(client):
    # No database fixture: pytest-django fails any query this request would make.
    response = client.get("/livez")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.live
def test_health_is_503_naming_the_database_when_it_is_unreachable_while_livez_is_200(live_console):
    console = live_console(workers=1, DATABASE_URL="postgres://postgres@127.0.0.1:1/nothing")
    for path in ("/api/health", "/readyz"):
        response = requests.get(f"{console.base}{path}", timeout=30)
        assert response.status_code == 503
        body = response.json()
        assert body["checks"]["database"] == "error"
        assert body["error"] == "database_unavailable"
        assert body["status"] == "error"
    live = requests.get(f"{console.base}/livez", timeout=30)
    assert (live.status_code, live.json()) == (200, {"status": "ok"})


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


@pytest.mark.postgres
def test_a_pool_busy_with_requests_is_ready_and_an_unreachable_one_is_not(db):
    from psycopg_pool import ConnectionPool, PoolTimeout

    from sofiia.health import _check_pool
    from tests.live import database_url

    busy = ConnectionPool(database_url(), min_size=1, max_size=1, open=False)
    try:
        busy.open(wait=True)
        _check_pool(busy)  # a free connection: checked
        with busy.connection():
            _check_pool(busy)  # every connection serving a request: busy, not down
    finally:
        busy.close()

    unreachable = ConnectionPool("postgres://postgres@127.0.0.1:1/nothing", min_size=1, max_size=1, open=False)
    try:
        with pytest.raises(PoolTimeout):
            _check_pool(unreachable)
    finally:
        unreachable.close(timeout=1)
