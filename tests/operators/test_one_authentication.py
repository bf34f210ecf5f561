"""Who the operator is, is looked up once per request: by the authentication middlewares,
lazily, and read from the request by the idempotency middleware, DRF and the view alike."""

from __future__ import annotations

import uuid

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from operators.models import ApiToken


def _lookups(queries: CaptureQueriesContext, table: str) -> list[str]:
    return [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].lstrip().upper().startswith("SELECT") and table in q["sql"]
    ]


def test_an_api_send_looks_its_token_up_once(alice):
    chat = alice.new_chat()
    with CaptureQueriesContext(connection) as queries:
        response = alice.send(chat["id"], "hello", key=uuid.uuid4().hex)
    assert response.status_code == 201
    assert len(_lookups(queries, ApiToken._meta.db_table)) == 1


def test_an_api_replay_looks_its_token_up_once(alice):
    chat = alice.new_chat()
    key = uuid.uuid4().hex
    alice.send(chat["id"], "hello", key=key)
    with CaptureQueriesContext(connection) as queries:
        response = alice.send(chat["id"], "hello", key=key)
    assert response["Idempotent-Replayed"] == "true"
    assert len(_lookups(queries, ApiToken._meta.db_table)) == 1


def test_a_console_send_reads_its_session_and_user_once(alice):
    chat = alice.new_chat()
    console = Client()
    assert console.login(username="alice", password=alice.password)
    with CaptureQueriesContext(connection) as queries:
        response = console.post(f"/console/chats/{chat['id']}/send", {"text": "hi", "idempotency_key": "k-1"})
    assert response.status_code == 302
    assert len(_lookups(queries, "django_session")) == 1
    user_lookups = [sql for sql in _lookups(queries, '"auth_user"') if 'FROM "auth_user"' in sql]
    assert len(user_lookups) == 1


def test_a_bad_token_is_refused_with_its_reason(anonymous):
    anonymous.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    response = anonymous.post("/api/chats/1/send", {"text": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert (response.status_code, response.json()["error"]) == (401, "authentication_failed")
    assert response["WWW-Authenticate"] == "Bearer"
    anonymous.credentials(HTTP_AUTHORIZATION="Bearer two parts")
    response = anonymous.get("/api/chats")
    assert response.json()["detail"] == "Invalid token header: give `Bearer <token>`."


def test_a_token_is_not_a_console_credential(alice):
    console = Client(HTTP_AUTHORIZATION=f"Bearer {alice.token}")
    response = console.get("/console/")
    assert response.status_code == 302
    assert response["Location"].startswith("/console/login/")
