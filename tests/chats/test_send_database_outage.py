"""A send whose database goes away: a reply that arrived is not thrown away (storing it is
retried, then handed to the background), the send is answered 503 database_unavailable, and
a retry with the same key gets the outcome as soon as the database is back — never a second
message, never a second node call, never a 409 for the rest of the lease."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from django.db import OperationalError, transaction

from audit.models import AuditEvent
from audit.services import AuditUnavailable
from chats import services
from chats.models import Message
from sofiia.lib.db import db_commit_guard, db_retry


@pytest.fixture
def handed_over(monkeypatch) -> list[Callable[[], object]]:
    """The writes a send hands to the background; the test runs them "once the database is back"."""
    pending: list[Callable[[], object]] = []
    monkeypatch.setattr(services, "db_finish_later", lambda operation, **kwargs: pending.append(operation))
    return pending


@pytest.fixture
def database_away(monkeypatch, settings):
    """Make the end of a delivery attempt fail as an unreachable database would, ``n`` times."""
    settings.SOFIIA_DB_RETRY_SECONDS = 0.5

    def away(times: int) -> list[int]:
        failures = [times]

        def guard() -> None:
            if failures[0] > 0:
                failures[0] -= 1
                raise OperationalError("server closed the connection unexpectedly")
            db_commit_guard()

        monkeypatch.setattr(services, "db_commit_guard", guard)
        return failures

    return away


def key() -> str:
    return uuid.uuid4().hex


def test_a_reply_is_stored_once_the_database_is_back_within_the_retry_window(alice, nodes, database_away):
    chat = alice.new_chat()
    database_away(2)
    response = alice.send(chat["id"], "hello", key="k1")
    assert response.status_code == 201, response.content
    assert Message.objects.get(role="operator").status == "delivered"
    assert Message.objects.filter(role="agent").count() == 1
    # The rolled-back tries left no audit event behind.
    assert AuditEvent.objects.filter(action="message.send").count() == 1
    assert len(nodes["NODA1"].calls) == 1


def test_a_reply_that_could_not_be_stored_is_kept_and_replayed_when_the_database_is_back(
    alice, nodes, database_away, handed_over
):
    chat = alice.new_chat()
    database_away(10**6)
    response = alice.send(chat["id"], "hello", key="k1")
    assert response.status_code == 503, response.content
    assert response.json()["error"] == "database_unavailable"
    assert int(response["Retry-After"]) > 0
    assert Message.objects.get(role="operator").status == "pending"

    database_away(0)
    (store_reply,) = handed_over
    store_reply()
    retry = alice.send(chat["id"], "hello", key="k1")
    assert retry.status_code == 201, retry.content
    assert retry["Idempotent-Replayed"] == "true"
    assert Message.objects.filter(role="operator").count() == 1
    assert Message.objects.filter(role="agent").count() == 1
    assert len(nodes["NODA1"].calls) == 1


def test_a_node_failure_that_could_not_be_recorded_is_released_for_a_retry(alice, nodes, database_away, handed_over):
    chat = alice.new_chat(agent="fail500")
    database_away(10**6)
    response = alice.send(chat["id"], "hello", key="k1")
    assert response.status_code == 503
    assert response.json()["error"] == "database_unavailable"

    database_away(0)
    (mark_failed,) = handed_over
    mark_failed()
    assert Message.objects.get(role="operator").status == "failed"
    # Not 409 for the rest of the lease: the retry takes the message over at once.
    retry = alice.send(chat["id"], "hello", key="k1")
    assert retry.status_code == 502
    assert retry.json()["operator_message"]["status"] == "failed"
    assert Message.objects.get(role="operator").attempts == 2
    assert len(nodes["NODA1"].calls) == 2


def test_a_message_stored_as_its_answer_was_lost_is_released_for_a_retry(alice, nodes, monkeypatch, handed_over):
    chat = alice.new_chat()
    take = services._operator_message_take

    def committed_but_lost(**kwargs):
        take(**kwargs)
        raise OperationalError("could not receive data from server")

    monkeypatch.setattr(services, "_operator_message_take", committed_but_lost)
    response = alice.send(chat["id"], "hello", key="k1")
    assert response.status_code == 503
    assert Message.objects.get(role="operator").status == "pending"
    assert nodes["NODA1"].calls == []

    monkeypatch.setattr(services, "_operator_message_take", take)
    (release,) = handed_over
    release()
    retry = alice.send(chat["id"], "hello", key="k1")
    assert retry.status_code == 201, retry.content
    assert Message.objects.filter(role="operator").count() == 1
    assert len(nodes["NODA1"].calls) == 1


def test_a_transaction_marked_for_rollback_is_not_a_success(db):
    def marked_then_guarded() -> None:
        with transaction.atomic():
            transaction.set_rollback(True)
            db_commit_guard()

    with pytest.raises(OperationalError):
        marked_then_guarded()


def test_db_retry_retries_outages_only_and_gives_up_after_its_window():
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("the database system is starting up")
        return "done"

    assert db_retry(flaky, seconds=5, what="test") == "done"
    assert len(calls) == 3

    def broken() -> None:
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError, match="a bug"):
        db_retry(broken, seconds=5, what="test")

    def down() -> None:
        raise OperationalError("connection refused")

    with pytest.raises(OperationalError):
        db_retry(down, seconds=0.2, what="test")


@pytest.fixture
def audit_refused(monkeypatch, settings):
    """Make the ``message.send`` audit event of a delivery fail to write, ``n`` times."""
    settings.SOFIIA_DB_RETRY_SECONDS = 0.5
    real = services.audit_record

    def refuse(times: int) -> list[int]:
        failures = [times]

        def record(**kwargs):
            if kwargs.get("action") == "message.send" and failures[0] > 0:
                failures[0] -= 1
                raise AuditUnavailable("The audit event could not be written.")
            return real(**kwargs)

        monkeypatch.setattr(services, "audit_record", record)
        return failures

    return refuse


def test_a_reply_whose_audit_event_failed_once_is_stored_with_its_event(alice, nodes, audit_refused):
    chat = alice.new_chat()
    audit_refused(1)
    response = alice.send(chat["id"], "hello", key="k1")
    assert response.status_code == 201, response.content
    assert Message.objects.get(role="agent").text == "NODA1/echo: hello"
    assert AuditEvent.objects.filter(action="message.send", outcome="delivered").count() == 1
    assert len(nodes["NODA1"].calls) == 1


def test_a_reply_whose_audit_event_cannot_be_written_is_kept_for_later_never_stored_unaudited(
    alice, nodes, audit_refused, handed_over
):
    chat = alice.new_chat()
    audit_refused(10**6)
    response = alice.send(chat["id"], "hello", key="k1")
    assert (response.status_code, response.json()["error"]) == (503, "audit_unavailable")
    # Nothing of the delivery committed without its event.
    assert Message.objects.get(role="operator").status == "pending"
    assert not Message.objects.filter(role="agent").exists()
    assert not AuditEvent.objects.filter(action="message.send").exists()

    audit_refused(0)
    (store_reply,) = handed_over
    store_reply()
    assert AuditEvent.objects.filter(action="message.send", outcome="delivered").count() == 1
    retry = alice.send(chat["id"], "hello", key="k1")
    assert (retry.status_code, retry["Idempotent-Replayed"]) == (201, "true")
    assert retry.json()["reply"]["text"] == "NODA1/echo: hello"
    assert len(nodes["NODA1"].calls) == 1
