"""A send takes its place in the send gate before anything of it touches the database.

A burst of sends must cost the worker a parked greenlet each until its turn: a send waiting
at the gate has not looked up its operator (a token or a session query), so health probes
and page loads never queue behind the burst for a pooled connection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from django.test import Client

import operators.auth
from chats.models import Message
from sofiia.lib.gate import send_gate

# Long enough for a send that is not held back to authenticate on a busy machine; a send that
# is held back can never authenticate while the gate is full, whatever the wait.
NOT_BEFORE_RELEASE = 0.5


def _in_thread(request: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    answers: list[Any] = []

    def run() -> None:
        try:
            answers.append(request())
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, answers


def _spy(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> threading.Event:
    called = threading.Event()
    real = getattr(owner, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        called.set()
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, spy)
    return called


# Committed data, so that the send in its own thread and connection finds the operator and
# its chat (and, on SQLite, no test transaction holds the write lock it needs).
@pytest.mark.django_db(transaction=True)
def test_an_api_send_waiting_for_the_gate_has_not_authenticated_its_token(alice, settings, monkeypatch):
    settings.SOFIIA_SENDS_ACTIVE_MAX = 1
    chat = alice.new_chat()
    authenticated = _spy(monkeypatch, operators.auth, "token_user")
    with send_gate.held(1):
        thread, answers = _in_thread(lambda: alice.send(chat["id"], "hello", key="gated-1"))
        assert not authenticated.wait(NOT_BEFORE_RELEASE)
        assert answers == []
    thread.join(10)
    assert authenticated.is_set()
    assert [answer.status_code for answer in answers] == [201]  # sent once its turn came


@pytest.mark.django_db(transaction=True)
def test_a_console_send_waiting_for_the_gate_has_not_read_its_session(alice, settings, monkeypatch):
    settings.SOFIIA_SENDS_ACTIVE_MAX = 1
    chat = alice.new_chat()
    console = Client()
    assert console.login(username="alice", password=alice.password)
    session_read = _spy(monkeypatch, SessionStore, "load")
    url = f"/console/chats/{chat['id']}/send"
    with send_gate.held(1):
        thread, answers = _in_thread(lambda: console.post(url, {"text": "hello", "idempotency_key": "gated-2"}))
        assert not session_read.wait(NOT_BEFORE_RELEASE)
        assert answers == []
    thread.join(10)
    assert session_read.is_set()
    assert [answer.status_code for answer in answers] == [302]
    assert chat_messages(chat["id"]) == ["hello", "NODA1/echo: hello"]


def chat_messages(chat_id: int) -> list[str]:
    return list(Message.objects.filter(chat_id=chat_id).order_by("ts", "id").values_list("text", flat=True))


def test_a_request_outside_the_gate_is_served_while_it_is_full(alice, settings):
    settings.SOFIIA_SENDS_ACTIVE_MAX = 1
    with send_gate.held(1):
        assert alice.api.get("/api/chats").status_code == 200
        assert alice.api.get("/livez").status_code == 200
