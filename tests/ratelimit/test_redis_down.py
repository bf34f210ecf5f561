"""The redis rate-limit backend losing its server: fail closed (default) or open, as configured."""

from __future__ import annotations

import logging
import os
import uuid

import pytest

from chats.models import Message
from sofiia.lib import limits as backends
from tests.caches import clear_caches
from tests.test_metrics import sample

pytestmark = pytest.mark.redis


@pytest.fixture
def limits_on_stopped_redis(settings, disposable_redis, monkeypatch):
    settings.SOFIIA_RATE_LIMIT_BACKEND = "redis"
    settings.CACHES = {**settings.CACHES, "ratelimit": disposable_redis.cache_settings()}
    clear_caches()
    disposable_redis.stop()
    # Each test starts a new burst of failures, so the first one is logged.
    monkeypatch.setattr(backends, "backend_errors", backends.BackendErrorLog())


def send(persona, chat_id, text):
    return persona.send(chat_id, text, key=uuid.uuid4().hex)


def errors(client) -> float:
    return sample(client.get("/metrics").content.decode(), "sofiia_ratelimit_backend_errors_total")


def test_fail_open_lets_sends_through_and_logs_once_per_burst(alice, client, settings, limits_on_stopped_redis, caplog):
    settings.SOFIIA_RATE_LIMIT_FAIL_OPEN = True
    chat = alice.new_chat()
    before = errors(client)
    with caplog.at_level(logging.ERROR, logger="ratelimit.services"):
        responses = [send(alice, chat["id"], f"open {i}") for i in range(3)]
    assert [r.status_code for r in responses] == [201, 201, 201]
    assert Message.objects.filter(role="operator").count() == 3
    assert responses[0]["RateLimit-Policy"] == '"chat";q=30;w=60, "operator";q=120;w=60'
    assert "RateLimit" not in responses[0]  # the quota is unknown while the backend is down
    logged = [r for r in caplog.records if r.getMessage() == "ratelimit.backend_error"]
    assert len(logged) == 1
    assert logged[0].fail_open is True
    assert errors(client) == before + 3
    health = client.get("/api/health").json()
    assert health["checks"]["ratelimit"] == "degraded"
    assert health["status"] == "degraded"


def test_fail_closed_is_the_default(settings):
    if "SOFIIA_RATE_LIMIT_FAIL_OPEN" in os.environ:
        pytest.skip("the environment sets SOFIIA_RATE_LIMIT_FAIL_OPEN")
    assert settings.SOFIIA_RATE_LIMIT_FAIL_OPEN is False


def test_fail_closed_answers_503_and_stores_nothing(alice, client, settings, limits_on_stopped_redis, nodes):
    settings.SOFIIA_RATE_LIMIT_FAIL_OPEN = True  # to create the chat the send goes to
    chat = alice.new_chat()
    settings.SOFIIA_RATE_LIMIT_FAIL_OPEN = False
    refused_chat = alice.api.post("/api/chats", {"title": "closed too", "agent": "echo"}, format="json")
    assert (refused_chat.status_code, refused_chat.json()["error"]) == (503, "rate_limit_unavailable")
    response = send(alice, chat["id"], "closed")
    assert response.status_code == 503
    assert response.json()["error"] == "rate_limit_unavailable"
    assert response["Retry-After"]
    assert not Message.objects.exists()
    assert nodes["NODA1"].calls == []
    assert client.get("/api/health").json()["checks"]["ratelimit"] == "degraded"
