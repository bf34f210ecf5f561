"""The hash chain: every event links to the one before, verify_audit finds the first
break, concurrent writers never fork it, and PostgreSQL refuses edits outright."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import threading
import uuid
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connections, transaction
from django.utils import timezone

from audit.chain import GENESIS_HASH, chain_verify, event_hash
from audit.models import AuditChainAnchor, AuditChainHead, AuditEvent
from audit.services import audit_prune, audit_record
from tests.audit.helpers import as_intruder, days_ago, events, seed_events, sql
from tests.live import PROJECT, TEST_AUDIT_CHAIN_KEY, database_url
from tests.personas import make_persona


def verify() -> str:
    from io import StringIO

    out = StringIO()
    call_command("verify_audit", stdout=out)
    return out.getvalue()


@pytest.fixture
def trail(alice):
    """A dozen events written through the API: chats, deliveries, a failure."""
    chat = alice.new_chat()
    failing = alice.new_chat(agent="fail500")
    for i in range(4):
        assert alice.send(chat["id"], f"m{i}", key=uuid.uuid4().hex).status_code == 201
    assert alice.send(failing["id"], "x", key=uuid.uuid4().hex).status_code == 502
    return events()


def test_events_written_through_the_api_form_an_intact_chain(trail):
    assert [e.id for e in trail] == list(range(1, len(trail) + 1))
    assert trail[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(trail):
        assert after.prev_hash == before.hash
        assert after.ts >= before.ts
    assert all(event_hash(e) == e.hash for e in trail)
    head = AuditChainHead.objects.get()
    assert (head.last_event_id, head.last_hash) == (trail[-1].id, trail[-1].hash)
    assert verify().startswith(f"Audit chain OK: {len(trail)} events, #1..#{len(trail)}, from genesis, in ")


def test_verify_names_an_edited_event(trail):
    with as_intruder():
        AuditEvent.objects.filter(id=4).update(outcome="failed")
    with pytest.raises(CommandError, match=r"event #4: its contents do not match its hash"):
        verify()


def test_an_edit_that_recomputes_the_hash_breaks_the_next_link(trail):
    forged = AuditEvent.objects.get(id=5)
    forged.details = {**forged.details, "node": "NODA2"}
    forged.hash = event_hash(forged)
    with as_intruder():
        AuditEvent.objects.filter(id=5).update(details=forged.details, hash=forged.hash)
    with pytest.raises(CommandError, match=r"event #6: does not link to event #5 \(the event before it was replaced"):
        verify()


def test_verify_names_the_event_after_a_deleted_one(trail):
    with as_intruder():
        AuditEvent.objects.filter(id=3).delete()
    with pytest.raises(CommandError, match=r"event #4: does not link to event #2 \(events #3..#3 are missing\)"):
        verify()


def test_verify_notices_events_deleted_at_the_end(trail):
    last = trail[-1].id
    with as_intruder():
        AuditEvent.objects.filter(id__gte=last - 1).delete()
    with pytest.raises(CommandError, match=rf"the chain head is event #{last} but the chain ends at event #{last - 2}"):
        verify()


def test_verify_notices_the_oldest_events_deleted(trail):
    with as_intruder():
        AuditEvent.objects.filter(id__lte=2).delete()
    with pytest.raises(CommandError, match=r"event #3: does not link to the start of the chain"):
        verify()


def test_verify_names_a_reordered_event(trail):
    with as_intruder():
        sql("UPDATE audit_auditevent SET id = -1 WHERE id = 6")
        sql("UPDATE audit_auditevent SET id = 6 WHERE id = 7")
        sql("UPDATE audit_auditevent SET id = 7 WHERE id = -1")
    with pytest.raises(CommandError, match=r"event #6: its contents do not match its hash \(.*moved\)"):
        verify()


def test_verify_notices_a_reordering_by_timestamp(trail):
    sixth, seventh = AuditEvent.objects.get(id=6), AuditEvent.objects.get(id=7)
    with as_intruder():
        AuditEvent.objects.filter(id=6).update(ts=seventh.ts)
        AuditEvent.objects.filter(id=7).update(ts=sixth.ts)
    report = chain_verify()
    assert report.broken is not None
    assert (report.broken.event_id, report.broken.kind) == (6, "edited")


@pytest.mark.postgres
def test_nobody_updates_an_audit_event_on_postgresql_not_even_the_tables_owner(trail):
    # Deletes are the owner's alone (test_tamper_evidence.py tests the application's role).
    for attempt in (
        lambda: AuditEvent.objects.filter(id=1).update(actor="mallory"),
        lambda: sql("UPDATE audit_auditevent SET details = '{}' WHERE id = 2"),
    ):
        with pytest.raises(DatabaseError, match="audit events are append-only"), transaction.atomic():
            attempt()
    assert AuditEvent.objects.get(id=1).actor == trail[0].actor == "system"


@pytest.mark.postgres
def test_pruning_goes_through_the_databases_own_function_on_postgresql(db):
    seed_events(days_ago(200, count=5))
    audit_record(actor="system", action="test.recent")
    seed_events(days_ago(300, count=1))  # old, but after a kept event: stays
    result = audit_prune(older_than=timezone.now() - timedelta(days=100), batch_size=2)
    assert (result.deleted, result.batches, result.first_id, result.last_id) == (5, 3, 1, 5)
    # One audit.prune event per batch, each written in its batch's transaction.
    assert [e.action for e in events()] == ["test.recent", "seed.event", "audit.prune", "audit.prune", "audit.prune"]
    assert [e.details["last_id"] for e in events(action="audit.prune")] == [2, 4, 5]
    assert AuditChainAnchor.objects.get().event_id == 5
    assert chain_verify().ok


def _write_concurrently(writers: int, per_writer: int) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(writers)

    def write(n: int) -> None:
        try:
            barrier.wait()
            for i in range(per_writer):
                assert audit_record(actor=f"writer{n}", action="test.concurrent", details={"i": i}) is not None
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_concurrent_writers_append_one_unforked_chain(transactional_db):
    assert _write_concurrently(writers=6, per_writer=15) == []
    written = events()
    assert [e.id for e in written] == list(range(1, 91))
    assert len({e.prev_hash for e in written}) == 90, "two events link to the same predecessor"
    assert [(e.ts, e.id) for e in written] == sorted((e.ts, e.id) for e in written)
    assert chain_verify().ok


@pytest.mark.live
def test_two_instances_writing_at_once_do_not_fork_the_chain(live_console):
    operators = [make_persona(name) for name in ("alice", "bob", "carol", "dave")]
    first, second = live_console(workers=2), live_console(workers=2)
    sent: list[int] = []
    errors: list[str] = []

    def operate(persona, console) -> None:
        http = console.session(persona.token)
        chat = http.post(f"{console.base}/api/chats", json={"title": "t", "agent": "echo"}, timeout=30).json()
        for i in range(8):
            response = http.post(
                f"{console.base}/api/chats/{chat['id']}/send",
                json={"text": f"{persona.username}-{i}"},
                headers={"Idempotency-Key": uuid.uuid4().hex},
                timeout=30,
            )
            (sent if response.status_code == 201 else errors).append(response.status_code)

    threads = [
        threading.Thread(target=operate, args=(persona, first if n % 2 else second))
        for n, persona in enumerate(operators)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(sent) == 32
    written = events()
    assert [e.id for e in written] == list(range(1, len(written) + 1))
    assert [e.action for e in written].count("message.send") == 32
    assert len({e.prev_hash for e in written}) == len(written)
    report = chain_verify()
    assert report.ok, report.broken
    assert report.checked == len(written)


def test_verify_audit_exits_non_zero_naming_the_broken_event(transactional_db):
    for i in range(3):
        audit_record(actor="system", action="test.event", details={"i": i})
    command = [sys.executable, "manage.py", "verify_audit"]
    env = {"DATABASE_URL": database_url(), "PATH": "/usr/bin:/bin", "SOFIIA_AUDIT_CHAIN_KEY": TEST_AUDIT_CHAIN_KEY}
    intact = subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=60)
    assert intact.returncode == 0, intact.stderr
    assert re.fullmatch(
        r"Audit chain OK: 3 events, #1\.\.#3, from genesis, in \d+\.\d s \([\d,]+ events/s\)\.", intact.stdout.strip()
    ), intact.stdout
    with as_intruder():
        AuditEvent.objects.filter(id=2).update(actor="mallory")
    broken = subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=60)
    assert broken.returncode == 1
    assert "Audit chain BROKEN: event #2: its contents do not match its hash" in broken.stderr


def test_a_flush_empties_the_trail_and_the_chain_starts_again(transactional_db):
    audit_record(actor="system", action="test.before")
    call_command("flush", interactive=False, verbosity=0)
    assert not AuditEvent.objects.exists()
    assert not AuditChainHead.objects.exists()
    event = audit_record(actor="system", action="test.after")
    assert event is not None
    assert (event.id, event.prev_hash) == (1, GENESIS_HASH)
    assert chain_verify().ok
    from django.contrib.auth.models import Group

    assert Group.objects.get(name="auditors").permissions.filter(codename="view_auditevent").exists()


def test_the_chain_head_is_rebuilt_from_the_events_when_it_is_missing(db):
    for i in range(3):
        audit_record(actor="system", action="test.event", details={"i": i})
    AuditChainHead.objects.all().delete()
    assert not chain_verify().ok
    event = audit_record(actor="system", action="test.event", details={"i": 3})
    assert event is not None
    assert event.id == 4
    assert chain_verify().ok


def test_event_details_hash_the_same_after_a_database_round_trip(db):
    from datetime import date
    from decimal import Decimal

    details = {
        "int": 1,
        "float": 2.5,
        "integral": 3.0,
        "big": 1e16,
        "small": 1.5e-7,
        "text": 'ü ☃ "q"',
        "nested": {"b": [1, None, True], "a": {}},
        "day": date(2026, 1, 2),
        "amount": Decimal("1.10"),
    }
    event = audit_record(actor="system", action="test.details", details=details)
    assert event is not None
    stored = AuditEvent.objects.get(id=event.id)
    assert event_hash(stored) == stored.hash == event.hash
    assert stored.details["day"] == "2026-01-02"
