from __future__ import annotations

import uuid

import pytest
from django.db import InterfaceError, OperationalError
from django.test import Client

from chats.models import Message


def assert_json_error(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == code, body
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


@pytest.mark.parametrize("debug", [False, True])
def test_an_unknown_api_url_is_a_json_404_even_in_debug(db, settings, debug):
    settings.DEBUG = debug
    assert_json_error(Client().get("/api/no/such/thing"), 404, "not_found")
    assert_json_error(Client().get("/api/chats/"), 404, "not_found")


def test_a_wrong_method_is_a_json_405(alice):
    response = alice.api.delete("/api/chats")
    assert_json_error(response, 405, "method_not_allowed")
    assert_json_error(Client().post("/api/health"), 405, "method_not_allowed")


def test_an_oversized_body_is_a_413_and_stores_nothing(alice, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    chat = alice.new_chat()
    response = alice.api.post(
        f"/api/chats/{chat['id']}/send", {"text": "x" * 2000}, format="json", HTTP_IDEMPOTENCY_KEY="big"
    )
    assert_json_error(response, 413, "payload_too_large")
    assert not Message.objects.exists()


@pytest.mark.parametrize("debug", [False, True])
def test_a_crash_under_api_is_a_json_500(alice, settings, monkeypatch, debug):
    settings.DEBUG = debug

    def explode(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("chats.api.chat_list_for_operator", explode)
    client = alice.api
    client.raise_request_exception = False
    body = assert_json_error(client.get("/api/chats"), 500, "internal_error")
    assert "boom" not in body["detail"]


def test_a_csrf_failure_for_a_session_user_is_json(alice):
    client = Client(enforce_csrf_checks=True)
    assert client.login(username="alice", password=alice.password)
    response = client.post("/api/chats", {"title": "x", "agent": "echo"}, content_type="application/json")
    assert_json_error(response, 403, "permission_denied")


def test_a_session_user_with_a_csrf_token_uses_the_api(alice):
    client = Client(enforce_csrf_checks=True)
    assert client.login(username="alice", password=alice.password)
    client.get("/console/")
    token = client.cookies["csrftoken"].value
    response = client.post(
        "/api/chats", {"title": "x", "agent": "echo"}, content_type="application/json", HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 201
    send = client.post(
        f"/api/chats/{response.json()['id']}/send", {"text": "hi"}, content_type="application/json",
        HTTP_X_CSRFTOKEN=token, HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex,
    )  # fmt: skip
    assert send.status_code == 201


def test_non_api_pages_keep_their_html_errors(db):
    response = Client().get("/nowhere")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("path", ["/api/chats", "/api/chats/{chat}/send"])
def test_json_nested_too_deeply_is_a_400_not_a_crash(alice, path):
    chat = alice.new_chat()
    response = alice.api.post(
        path.format(chat=chat["id"]),
        data='{"text": ' + deep(100_000) + "}",
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="deep",
    )
    assert_json_error(response, 400, "parse_error")
    assert not Message.objects.exists()


def test_json_nested_deeply_but_parseable_is_refused_as_input(alice):
    chat = alice.new_chat()
    response = alice.api.post(
        f"/api/chats/{chat['id']}/send",
        data='{"text": ' + deep(200) + "}",
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="deep",
    )
    assert_json_error(response, 400, "invalid_input")


@pytest.mark.parametrize("path", ["//api/chats", "/API/chats", "/Api/no/such", "/api", "///api/health"])
def test_every_spelling_of_an_api_path_is_answered_in_json(alice, path):
    # As a server hands the path over (the test client would read "//api" as a host).
    response = alice.api.get("/", PATH_INFO=path)
    assert_json_error(response, 404, "not_found")


def test_a_huge_or_malformed_cursor_is_a_400(alice):
    alice.new_chat()
    for cursor in ("x", "x" * 5000, "%00", "a:b:c", "\u00e9" * 100):
        assert_json_error(alice.api.get("/api/chats", {"cursor": cursor}), 400, "invalid_cursor")


@pytest.mark.parametrize(
    "error",
    [OperationalError("connection refused"), InterfaceError("connection already closed")],
    ids=["operational", "interface"],
)
def test_a_database_outage_is_a_503_with_retry_after(alice, monkeypatch, error):
    def unreachable(**kwargs):
        raise error

    monkeypatch.setattr("chats.api.chat_list_for_operator", unreachable)
    response = alice.api.get("/api/chats")
    assert_json_error(response, 503, "database_unavailable")
    assert int(response["Retry-After"]) > 0


def test_a_database_outage_outside_drf_is_a_503_too(db, monkeypatch):
    def unreachable(request):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr("sofiia.health.check_database", lambda: "ok")
    monkeypatch.setattr("sofiia.health.version", lambda: unreachable(None))
    client = Client(raise_request_exception=False)
    response = client.get("/api/health")
    assert_json_error(response, 503, "database_unavailable")
    assert response["Retry-After"]
