"""The redis idempotency backend losing its server mid-test: sends go on and never duplicate."""

from __future__ import annotations

import logging

import pytest

from chats.models import Message
from tests.caches import clear_caches
from tests.test_metrics import sample

pytestmark = pytest.mark.redis


@pytest.fixture
def idempotency_on_own_redis(settings, disposable_redis):
    settings.SOFIIA_IDEMPOTENCY_BACKEND = "redis"
    settings.CACHES = {**settings.CACHES, "idempotency": disposable_redis.cache_settings()}
    clear_caches()
    return disposable_redis


def test_a_send_stored_before_redis_stops_is_still_exactly_once(alice, nodes, client, idempotency_on_own_redis, caplog):
    chat = alice.new_chat()
    first = alice.send(chat["id"], "before the outage", key="k-outage")
    assert first.status_code == 201
    errors_before = sample(client.get("/metrics").content.decode(), "sofiia_idempotency_backend_errors_total")

    idempotency_on_own_redis.stop()
    with caplog.at_level(logging.ERROR, logger="chats.idempotency"):
        again = alice.send(chat["id"], "before the outage", key="k-outage")
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"  # answered from the database
    assert Message.objects.count() == 2
    assert len(nodes["NODA1"].calls_with("before the outage")) == 1

    fresh = alice.send(chat["id"], "during the outage", key="k-new")
    assert fresh.status_code == 201
    assert alice.send(chat["id"], "during the outage", key="k-new")["Idempotent-Replayed"] == "true"
    assert len(nodes["NODA1"].calls_with("during the outage")) == 1

    metrics = client.get("/metrics").content.decode()
    assert sample(metrics, "sofiia_idempotency_backend_errors_total") >= errors_before + 3
    assert any(r.getMessage() == "idempotency.backend_error" for r in caplog.records)
    health = client.get("/api/health").json()
    assert health["status"] == "degraded"
    assert health["checks"]["idempotency"] == "degraded"
    assert health["checks"]["database"] == "ok"
