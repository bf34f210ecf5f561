"""Helpers for the audit tests: seeding the chain in bulk, tampering as an intruder would,
reading the trail back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from types import SimpleNamespace

from django.db import connection, transaction
from django.utils import timezone

from audit.chain import chain_head_from_events, event_hash
from audit.chain_keys import signing_key
from audit.models import AuditChainHead, AuditEvent
from audit.services import HEAD_PK

COLUMNS = (
    "id", "ts", "actor", "action", "target_type", "target_id", "chat_id", "outcome",
    "request_id", "ip", "user_agent", "details", "key_id", "prev_hash", "hash",
)  # fmt: skip


def events(**filters) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(**filters).order_by("id"))


def only_event(**filters) -> AuditEvent:
    found = events(**filters)
    assert len(found) == 1, [(e.id, e.action, e.actor, e.outcome) for e in found]
    return found[0]


def seed_events(timestamps: list[datetime], *, action: str = "seed.event", actor: str = "seeder") -> range:
    """Append already-hashed events with the given timestamps to the chain, in bulk.

    For setting up history (events from months ago) quickly: PostgreSQL gets them by COPY.
    """
    head = AuditChainHead.objects.filter(pk=HEAD_PK).first()
    last = chain_head_from_events() if head is None else None
    next_id = (head.last_event_id if head else last.event_id) + 1
    prev = head.last_hash if head else last.hash
    rows = []
    for offset, ts in enumerate(timestamps):
        event = SimpleNamespace(
            id=next_id + offset, ts=ts, actor=actor, action=action, target_type="", target_id="",
            chat_id=None, outcome="success", request_id="", ip=None, user_agent="", details={"n": offset},
            key_id=signing_key().key_id, prev_hash=prev,
        )  # fmt: skip
        event.hash = event_hash(event)
        prev = event.hash
        rows.append(event)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with (
                connection.cursor() as cursor,
                cursor.copy(f"COPY audit_auditevent ({', '.join(COLUMNS)}) FROM STDIN") as copy,
            ):
                for event in rows:
                    copy.write_row(
                        [json.dumps(event.details) if c == "details" else getattr(event, c) for c in COLUMNS]
                    )
        else:
            AuditEvent.objects.bulk_create([AuditEvent(**vars(event)) for event in rows], batch_size=2000)
        AuditChainHead.objects.update_or_create(
            pk=HEAD_PK, defaults={"last_event_id": rows[-1].id, "last_hash": rows[-1].hash, "last_ts": rows[-1].ts}
        )
    return range(next_id, next_id + len(rows))


def days_ago(days: float, *, count: int = 1) -> list[datetime]:
    start = timezone.now() - timedelta(days=days)
    return [start + timedelta(microseconds=i) for i in range(count)]


@contextmanager
def as_intruder() -> Iterator[None]:
    """Change audit rows directly, as someone with the database owner's rights could.

    On PostgreSQL the append-only trigger is bypassed the only way the application cannot:
    ``session_replication_role`` needs a superuser.
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL session_replication_role = replica")
        yield


def sql(statement: str, params: list | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params or [])
