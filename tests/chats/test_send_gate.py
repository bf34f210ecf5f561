"""A send takes its place in the send gate before anything of it touches the database, once,
and gives it up only while its node thinks.

A burst of sends must cost the worker a parked greenlet each until its turn: a send waiting
at the gate has not looked up its operator (a token or a session query), so health probes
and page loads never queue behind the burst for a pooled connection.

These tests observe the gate from inside the request (what the request held when it first
asked who its operator is), so they fail on a send view that is not gated, whatever the
test itself holds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from django.test import Client

import chats.send_gate
import chats.services
import operators.auth
from chats.models import Message
from sofiia.lib.gate import send_gate


def _record_gate_when_called(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[bool]:
    """Replace ``owner.name`` with a spy that notes whether the calling request held a place."""
    held: list[bool] = []
    real = getattr(owner, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        held.append(send_gate.is_held())
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, spy)
    return held


def test_an_api_send_looks_its_token_up_inside_the_gate(alice, monkeypatch):
    chat = alice.new_chat()
    held_at_lookup = _record_gate_when_called(monkeypatch, operators.auth, "token_user")
    assert alice.send(chat["id"], "hello", key="gated-1").status_code == 201
    assert held_at_lookup == [True]


def test_a_console_send_reads_its_session_inside_the_gate(alice, monkeypatch):
    chat = alice.new_chat()
    console = Client()
    assert console.login(username="alice", password=alice.password)
    held_at_read = _record_gate_when_called(monkeypatch, SessionStore, "load")
    response = console.post(f"/console/chats/{chat['id']}/send", {"text": "hello", "idempotency_key": "gated-2"})
    assert response.status_code == 302
    assert held_at_read == [True]
    assert chat_messages(chat["id"]) == ["hello", "NODA1/echo: hello"]


def test_a_send_enters_the_gate_once_and_gives_it_up_only_for_the_node_call(alice, monkeypatch):
    chat = alice.new_chat()
    entries = _count_calls(monkeypatch, send_gate, "held")
    given_up_at: list[str] = []
    real_infer = chats.services.infer

    def infer(**kwargs: Any) -> Any:
        given_up_at.append("infer" if not send_gate.is_held() else "infer inside the gate")
        return real_infer(**kwargs)

    monkeypatch.setattr(chats.services, "infer", infer)
    assert alice.send(chat["id"], "once", key="gated-3").status_code == 201
    assert entries == [1]
    assert given_up_at == ["infer"]


def _count_calls(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[int]:
    calls = [0]
    real = getattr(owner, name)

    @contextmanager
    def counted(*args: Any, **kwargs: Any) -> Iterator[None]:
        calls[0] += 1
        with real(*args, **kwargs):
            yield

    monkeypatch.setattr(owner, name, counted)
    return calls


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


# Committed data, so that the send in its own thread and connection finds the operator and
# its chat (and, on SQLite, no test transaction holds the write lock it needs).
@pytest.mark.django_db(transaction=True)
def test_a_send_waiting_for_a_full_gate_has_not_authenticated(alice, settings, monkeypatch):
    settings.SOFIIA_SENDS_ACTIVE_MAX = 1
    chat = alice.new_chat()
    authenticated = threading.Event()
    real_token_user = operators.auth.token_user

    def token_user(token: str) -> Any:
        authenticated.set()
        return real_token_user(token)

    monkeypatch.setattr(operators.auth, "token_user", token_user)
    # The gate calls this only when a send finds no free place, right before it waits.
    waiting = threading.Event()
    monkeypatch.setattr(chats.send_gate, "db_connections_release", waiting.set)
    holder_in, holder_out = threading.Event(), threading.Event()

    def hold_the_only_place() -> None:
        with send_gate.held(1):
            holder_in.set()
            holder_out.wait(30)

    holder = threading.Thread(target=hold_the_only_place, daemon=True)
    holder.start()
    assert holder_in.wait(10)
    thread, answers = _in_thread(lambda: alice.send(chat["id"], "hello", key="gated-4"))
    assert waiting.wait(10)
    assert not authenticated.is_set()
    assert answers == []
    holder_out.set()
    thread.join(30)
    holder.join(10)
    assert authenticated.is_set()
    assert [answer.status_code for answer in answers] == [201]  # sent once its turn came


def chat_messages(chat_id: int) -> list[str]:
    return list(Message.objects.filter(chat_id=chat_id).order_by("ts", "id").values_list("text", flat=True))


def test_a_request_outside_the_gate_is_served_while_it_is_full(alice, settings):
    settings.SOFIIA_SENDS_ACTIVE_MAX = 1
    with send_gate.held(1):
        assert alice.api.get("/api/chats").status_code == 200
        assert alice.api.get("/livez").status_code == 200
