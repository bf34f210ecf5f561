"""An outsider with no account stores nothing: no session row, no row anywhere, whatever
they post. A send whose session expired keeps its draft in a small signed cookie instead."""

from __future__ import annotations

import re

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core import signing
from django.test import Client

from audit.models import AuditEvent
from chats.models import Message
from chats.views import DRAFT_COOKIE_MAX_AGE, DRAFT_COOKIE_MAX_BYTES, DRAFT_COOKIE_MAX_CHARS, DRAFT_COOKIE_NAME
from sofiia.lib.clock import clock_now
from tests.chats.test_console_pages import composer_of

pytestmark = pytest.mark.django_db(transaction=True)


def row_counts() -> dict[str, int]:
    return {model._meta.label: model.objects.count() for model in apps.get_models()}


def outsider() -> tuple[Client, str]:
    """A client with no account, holding the CSRF token the login page hands anyone."""
    client = Client(enforce_csrf_checks=True)
    page = client.get("/console/login/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    return client, token


def test_csrf_tokens_live_in_a_cookie_not_in_the_session():
    assert settings.CSRF_USE_SESSIONS is False
    client, _ = outsider()
    assert settings.CSRF_COOKIE_NAME in client.cookies
    assert Session.objects.count() == 0


def test_two_hundred_anonymous_sends_of_100000_characters_store_nothing(alice):
    chat = alice.new_chat()
    before = row_counts()
    client, token = outsider()
    for number in range(200):
        # Each post as a new visitor: a session cookie, if one were set, is not sent back.
        client.cookies.pop(settings.SESSION_COOKIE_NAME, None)
        response = client.post(
            f"/console/chats/{chat['id'] + number}/send",
            {"csrfmiddlewaretoken": token, "text": "x" * 100_000, "idempotency_key": f"k{number}"},
        )
        assert response.status_code == 302
        assert response["Location"].startswith("/console/login/?next=")
    assert Session.objects.count() == 0
    assert row_counts() == before


def test_anonymous_posts_to_every_console_action_and_a_failed_login_store_no_session(alice):
    chat = alice.new_chat()
    client, token = outsider()
    for path in ("send", "rename", "archive"):
        client.post(f"/console/chats/{chat['id']}/{path}", {"csrfmiddlewaretoken": token, "text": "t", "title": "t"})
    client.post("/console/language", {"csrfmiddlewaretoken": token, "language": "uk"})
    client.post("/console/login/", {"csrfmiddlewaretoken": token, "username": "alice", "password": "wrong-password"})
    client.post("/console/login/", {"csrfmiddlewaretoken": token, "username": "nobody", "password": "x"})
    for path in ("/console/", f"/console/chats/{chat['id']}/", "/admin/", "/admin/login/", "/api/docs/", "/livez"):
        client.get(path)
    assert Session.objects.count() == 0
    assert AuditEvent.objects.filter(action="auth.login").count() == 0


def test_an_anonymous_draft_is_a_small_signed_cookie_for_that_chat_only(alice):
    chat = alice.new_chat()
    client, token = outsider()
    response = client.post(
        f"/console/chats/{chat['id']}/send",
        {"csrfmiddlewaretoken": token, "text": "ї" * 100_000, "idempotency_key": "k"},
    )
    cookie = response.cookies[DRAFT_COOKIE_NAME]
    assert len(cookie.value) <= DRAFT_COOKIE_MAX_BYTES
    assert cookie["path"] == f"/console/chats/{chat['id']}/"
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert int(cookie["max-age"]) == DRAFT_COOKIE_MAX_AGE
    payload = signing.loads(cookie.value, salt="sofiia.console.draft")
    assert payload["c"] == chat["id"]
    assert 0 < len(payload["t"]) <= DRAFT_COOKIE_MAX_CHARS
    assert set(payload["t"]) == {"ї"}


def test_the_draft_comes_back_once_after_login_and_its_cookie_is_deleted(alice):
    chat = alice.new_chat()
    client, token = outsider()
    client.post(
        f"/console/chats/{chat['id']}/send",
        {"csrfmiddlewaretoken": token, "text": "kept\r\nfor later", "idempotency_key": "k9"},
    )
    client.post("/console/login/", {"csrfmiddlewaretoken": token, "username": "alice", "password": alice.password})
    page = client.get(f"/console/chats/{chat['id']}/")
    assert composer_of(page.content.decode()) == ("kept\r\nfor later", "k9")
    deleted = page.cookies[DRAFT_COOKIE_NAME]
    assert (deleted.value, deleted["path"], deleted["max-age"]) == ("", f"/console/chats/{chat['id']}/", 0)
    text, key = composer_of(client.get(f"/console/chats/{chat['id']}/").content.decode())
    assert (text, key != "k9") == ("", True)
    assert not Message.objects.exists()
    assert AuditEvent.objects.filter(action="auth.login", actor="alice").count() == 1


def test_a_forged_stale_or_foreign_draft_cookie_is_ignored_and_deleted(alice, clock):
    chat, other = alice.new_chat(), alice.new_chat()
    client = Client()
    assert client.login(username="alice", password=alice.password)
    foreign = signing.dumps({"c": other["id"], "t": "other chat", "k": "k"}, salt="sofiia.console.draft")
    stale = signing.dumps(
        {"c": chat["id"], "t": "too old", "k": "k", "at": int(clock_now().timestamp())}, salt="sofiia.console.draft"
    )
    for value in ("forged:value", foreign):
        client.cookies[DRAFT_COOKIE_NAME] = value
        page = client.get(f"/console/chats/{chat['id']}/")
        assert composer_of(page.content.decode())[0] == ""
        assert page.cookies[DRAFT_COOKIE_NAME].value == ""
    clock(DRAFT_COOKIE_MAX_AGE + 1)
    client.cookies[DRAFT_COOKIE_NAME] = stale
    page = client.get(f"/console/chats/{chat['id']}/")
    assert composer_of(page.content.decode())[0] == ""
    assert page.cookies[DRAFT_COOKIE_NAME].value == ""
