"""The audit trail against someone who can write its tables: links are HMACs under a key the
database never sees, signed checkpoints kept elsewhere vouch for its head, and on PostgreSQL
the application's own role cannot change, delete or truncate it."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from audit.chain import GENESIS_HASH, chain_verify, event_hash
from audit.chain_keys import ChainKey
from audit.checkpoints import (
    Checkpoint,
    checkpoint_make,
    checkpoint_problem,
    checkpoint_write,
    new_signing_key_pem,
    verify_key,
)
from audit.hardening import audit_harden
from audit.models import AuditChainAnchor, AuditChainHead, AuditEvent
from audit.services import audit_prune, audit_record
from tests.audit.helpers import as_intruder, days_ago, events, seed_events, sql
from tests.live import database_url


@pytest.fixture
def trail(db):
    for index in range(8):
        audit_record(actor="system", action="test.event", details={"n": index})
    return events()


@pytest.fixture
def checkpoint_keys(settings):
    settings.SOFIIA_AUDIT_SIGNING_KEY = new_signing_key_pem()
    settings.SOFIIA_AUDIT_VERIFY_KEY = ""


@pytest.fixture
def checkpoints(tmp_path, checkpoint_keys) -> Path:
    return tmp_path / "checkpoints"


def verify(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("verify_audit", *args, stdout=out)
    return out.getvalue()


def rehash_from(event_id: int, *, link) -> None:
    """Rewrite the links from ``event_id`` to the end with ``link``, and move the head, as an
    intruder who can write every table would."""
    previous = AuditEvent.objects.get(id=event_id - 1).hash if event_id > 1 else GENESIS_HASH
    with as_intruder():
        for event in AuditEvent.objects.filter(id__gte=event_id).order_by("id"):
            event.prev_hash = previous
            event.hash = link(event)
            AuditEvent.objects.filter(id=event.id).update(
                prev_hash=event.prev_hash, hash=event.hash, key_id=event.key_id, details=event.details
            )
            previous = event.hash
        AuditChainHead.objects.update(last_hash=previous)


def test_the_chain_key_rotates_and_an_event_under_a_dropped_key_is_named(trail, settings):
    assert {event.key_id for event in trail} == {"tests"}
    assert chain_verify().ok
    former = list(settings.SOFIIA_AUDIT_CHAIN_KEYS)
    settings.SOFIIA_AUDIT_CHAIN_KEYS = [("k2026", "x" * 40), *former]
    audit_record(actor="system", action="test.rotated")
    assert events()[-1].key_id == "k2026"
    assert chain_verify().ok  # the former key still verifies the older events
    settings.SOFIIA_AUDIT_CHAIN_KEYS = [("k2026", "x" * 40)]
    report = chain_verify()
    assert (report.broken.event_id, report.broken.kind) == (1, "unknown_key")


def test_without_a_configured_key_the_chain_key_comes_from_the_secret_key(db, settings):
    settings.SOFIIA_AUDIT_CHAIN_KEYS = []
    audit_record(actor="system", action="test.derived")
    assert events()[-1].key_id.startswith("secret-key-")
    assert chain_verify().ok


def test_an_edit_rehashed_with_the_codes_own_function_but_not_the_key_is_caught(trail):
    guessed = ChainKey(key_id=trail[0].key_id, secret=b"the intruder's best guess")
    with as_intruder():
        AuditEvent.objects.filter(id=4).update(details={"n": 99})

    def forged(event: AuditEvent) -> str:
        document = {"v": 2, "kid": event.key_id, "id": event.id, "details": event.details, "prev": event.prev_hash}
        return guessed.sign(json.dumps(document, sort_keys=True).encode())

    rehash_from(4, link=forged)
    with pytest.raises(CommandError, match=r"event #4: its contents do not match its hash"):
        verify()


def test_a_tail_rehashed_without_a_key_is_caught(trail):
    def unkeyed(event: AuditEvent) -> str:
        event.key_id = ""
        return event_hash(event)  # version 1: plain SHA-256, no key needed

    rehash_from(5, link=unkeyed)
    with pytest.raises(CommandError, match=r"event #5: has no chain key after keyed events"):
        verify()


def _unkeyed(event: AuditEvent) -> str:
    event.key_id = ""
    return event_hash(event)  # version 1: plain SHA-256, no key needed


def test_keyed_events_rewritten_as_unkeyed_links_are_caught(trail):
    # The whole chain, from genesis to the head: no keyed link is left for an unkeyed one to follow.
    rehash_from(1, link=_unkeyed)
    assert not any(event.key_id for event in events())
    with pytest.raises(CommandError, match=r"event #8: the chain ends with a link that has no chain key"):
        verify()


def test_keyed_events_rewritten_as_unkeyed_links_fail_the_checkpoints_too(trail, checkpoints):
    checkpoint_write(checkpoint_make(), checkpoints)
    rehash_from(1, link=_unkeyed)
    problem = checkpoint_problem(Checkpoint.from_json(next(checkpoints.glob("*.json")).read_text()), verify_key())
    assert problem == "event #8 was replaced (its link differs from the checkpoint's)"


def _move_anchor_by_hand(upto: int) -> None:
    """Delete the oldest events and re-anchor the chain after them, as an intruder would."""
    last = AuditEvent.objects.get(id=upto)
    with as_intruder():
        AuditEvent.objects.filter(id__lte=upto).delete()
        AuditChainAnchor.objects.update_or_create(pk=1, defaults={"event_id": upto, "hash": last.hash, "ts": last.ts})


def test_a_moved_anchor_is_caught(trail):
    _move_anchor_by_hand(3)
    with pytest.raises(CommandError, match=r"the prune anchor \(event #3\) was moved without a recorded prune"):
        verify()


def test_a_moved_anchor_is_caught_by_the_checkpoints(trail, checkpoints):
    checkpoint_write(checkpoint_make(), checkpoints)
    _move_anchor_by_hand(3)
    checkpoint = Checkpoint.from_json(next(checkpoints.glob("*.json")).read_text())
    assert checkpoint.anchor_hash == GENESIS_HASH  # the anchor is signed too
    assert checkpoint_problem(checkpoint, verify_key()) == (
        "the prune anchor moved from #0 to #3 with no recorded prune (the oldest events were deleted and the "
        "anchor moved)"
    )
    with pytest.raises(CommandError, match=r"moved without a recorded prune"):
        verify("--checkpoints", str(checkpoints))


def test_a_prune_that_deletes_nothing_does_not_vouch_for_a_moved_anchor(trail):
    _move_anchor_by_hand(3)
    audit_prune(older_than=timezone.now() - timedelta(days=90), batch_size=100)
    with pytest.raises(CommandError, match=r"moved without a recorded prune"):
        verify()


def test_a_prune_in_several_batches_verifies_with_its_checkpoints(db, checkpoints, settings):
    settings.SOFIIA_AUDIT_RETENTION_DAYS = 90
    seed_events(days_ago(200, count=5))
    checkpoint_write(checkpoint_make(), checkpoints)
    audit_record(actor="system", action="test.recent")
    audit_prune(older_than=timezone.now() - timedelta(days=90), batch_size=2)
    assert [e.details["last_id"] for e in events(action="audit.prune")] == [2, 4, 5]
    checkpoint_write(checkpoint_make(), checkpoints)
    assert "Every checkpoint in" in verify("--checkpoints", str(checkpoints))


def test_a_deleted_tail_with_the_head_moved_back_fails_the_checkpoints(trail, checkpoints):
    checkpoint_write(checkpoint_make(), checkpoints)
    with as_intruder():
        AuditEvent.objects.filter(id__gt=5).delete()
        last = AuditEvent.objects.get(id=5)
        AuditChainHead.objects.update(last_event_id=5, last_hash=last.hash, last_ts=last.ts)
    assert "Audit chain OK" in verify()  # the chain alone cannot tell
    with pytest.raises(CommandError, match=r"vouches for event #8 but the chain ends at #5"):
        verify("--checkpoints", str(checkpoints))


@pytest.mark.postgres
def test_a_truncated_trail_fails_the_checkpoints(transactional_db, trail, checkpoints):
    checkpoint_write(checkpoint_make(), checkpoints)
    # Only a superuser gets a TRUNCATE of the audit tables through (see the role tests below).
    sql("TRUNCATE audit_auditevent, audit_auditchainhead, audit_auditchainanchor")
    assert "Audit chain OK: no events" in verify()
    with pytest.raises(CommandError, match=r"vouches for event #8 but the chain ends at #0"):
        verify("--checkpoints", str(checkpoints))


def test_an_event_rehashed_with_the_real_key_is_still_caught_by_a_checkpoint(trail, checkpoints):
    # Someone who stole the chain key too: the chain verifies, the checkpoint does not.
    checkpoint_write(checkpoint_make(), checkpoints)
    with as_intruder():
        AuditEvent.objects.filter(id=8).update(details={"n": "rewritten"})
    rehash_from(8, link=event_hash)
    assert "Audit chain OK" in verify()
    with pytest.raises(CommandError, match=r"event #8 was replaced"):
        verify("--checkpoints", str(checkpoints))


def test_a_forged_checkpoint_is_refused(trail, checkpoints):
    genuine = checkpoint_make()
    forged = replace(genuine, event_id=3)
    checkpoint_write(forged, checkpoints)
    with pytest.raises(CommandError, match=r"its signature does not verify"):
        verify("--checkpoints", str(checkpoints))


def test_matching_checkpoints_and_a_prune_past_retention_verify(db, checkpoints, settings):
    settings.SOFIIA_AUDIT_RETENTION_DAYS = 90
    old = seed_events(days_ago(200, count=3))
    checkpoint_write(checkpoint_make(), checkpoints)  # vouches for the last old event
    audit_record(actor="system", action="test.recent")
    checkpoint_write(checkpoint_make(), checkpoints)
    audit_prune(older_than=timezone.now() - timedelta(days=90), batch_size=100)
    assert AuditEvent.objects.filter(id__in=old).count() == 0
    assert "Every checkpoint in" in verify("--checkpoints", str(checkpoints))


def test_the_checkpoint_command_writes_what_the_verifier_accepts(trail, checkpoints):
    from io import StringIO

    call_command("audit_checkpoint", "--out", str(checkpoints))
    (written,) = checkpoints.glob("checkpoint-*.json")
    checkpoint = Checkpoint.from_json(written.read_text())
    assert (checkpoint.event_id, checkpoint.hash) == (trail[-1].id, trail[-1].hash)
    printed = StringIO()
    call_command("audit_checkpoint", stdout=printed)
    assert json.loads(printed.getvalue())["event_id"] == trail[-1].id
    assert "Every checkpoint" in verify("--checkpoints", str(checkpoints))


def test_without_a_signing_key_the_checkpoint_command_says_so(db, settings):
    settings.SOFIIA_AUDIT_SIGNING_KEY = ""
    with pytest.raises(CommandError, match="SOFIIA_AUDIT_SIGNING_KEY"):
        call_command("audit_checkpoint")


# --- PostgreSQL: the application's role against its own database ------------------------


@pytest.fixture
def app_role(transactional_db) -> Iterator[psycopg.Connection]:
    """A login role hardened like the console's in production, and a connection as it."""
    suffix = uuid.uuid4().hex[:8]
    app, owner = f"sofiia_test_app_{suffix}", f"sofiia_test_owner_{suffix}"
    sql(f"CREATE ROLE {app} LOGIN")
    audit_harden(app_role=app, owner_role=owner)
    url = database_url().replace("postgres://postgres@", f"postgres://{app}@")
    attacker = psycopg.connect(url, autocommit=True)
    try:
        yield attacker
    finally:
        attacker.close()
        me = connection.settings_dict.get("USER") or "postgres"
        sql(f"REASSIGN OWNED BY {owner} TO {me}")
        sql(f"DROP OWNED BY {app}")
        sql(f"DROP ROLE {app}")
        sql(f"DROP ROLE {owner}")


ATTACKS = [
    "UPDATE audit_auditevent SET actor = 'mallory' WHERE id = 2",
    "DELETE FROM audit_auditevent WHERE id = 8",
    "DELETE FROM audit_auditevent",
    "TRUNCATE audit_auditevent",
    "TRUNCATE audit_auditchainhead, audit_auditchainanchor",
    "UPDATE audit_auditchainhead SET last_event_id = last_event_id - 3",
    "DELETE FROM audit_auditchainhead",
    "UPDATE audit_auditchainanchor SET event_id = 7",
    "SET sofiia.audit_prune = 'on'; DELETE FROM audit_auditevent WHERE id = 1",
    "ALTER TABLE audit_auditevent DISABLE TRIGGER ALL",
    "DROP TABLE audit_auditevent CASCADE",
    "ALTER FUNCTION audit_prune_batch(timestamptz, integer) SECURITY INVOKER",
]


@pytest.mark.postgres
@pytest.mark.parametrize("attack", ATTACKS)
def test_the_applications_role_cannot_rewrite_the_trail(app_role, trail, attack):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app_role.execute(attack)
    assert [event.id for event in events()] == [event.id for event in trail]
    assert chain_verify().ok


@pytest.mark.postgres
def test_the_applications_role_appends_and_prunes_only_through_the_database(app_role, db):
    seed_events(days_ago(200, count=4))
    audit_record(actor="system", action="test.recent")
    cutoff = timezone.now() - timedelta(days=90)
    deleted, first_id, last_id, more = app_role.execute("SELECT * FROM audit_prune_batch(%s, 100)", [cutoff]).fetchone()
    assert (deleted, first_id, last_id, more) == (4, 1, 4, False)
    assert [event.action for event in events()] == ["test.recent"]
    # Its role may call the function, but without the chain key it cannot record the prune:
    # the anchor it left is named by no keyed audit.prune event.
    assert chain_verify().broken.kind == "anchor_moved"
    # An event it appends without the chain key does not verify.
    head = AuditChainHead.objects.get()
    forged_hash = hashlib.sha256(b"forged").hexdigest()
    app_role.execute(
        "INSERT INTO audit_auditevent (id, ts, actor, action, target_type, target_id, outcome, request_id, "
        "user_agent, details, key_id, prev_hash, hash) VALUES (%s, now(), 'mallory', 'chat.create', '', '', "
        "'success', '', '', '{}', %s, %s, %s)",
        [head.last_event_id + 1, events()[-1].key_id, head.last_hash, forged_hash],
    )
    app_role.execute("UPDATE audit_auditchainhead SET last_event_id = last_event_id + 1, last_hash = %s", [forged_hash])
    with pytest.raises(CommandError, match=rf"event #{head.last_event_id + 1}: its contents do not match its hash"):
        verify()


@pytest.mark.postgres
def test_the_harden_command_reports_the_state(app_role, db):
    role = app_role.info.user
    out = call_command("audit_harden", "--app-role", role, "--check")
    assert out is None
    with pytest.raises(CommandError, match="NOT hardened for postgres"):
        call_command("audit_harden", "--app-role", "postgres", "--check")
