from __future__ import annotations

import ipaddress
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from django.contrib.auth.models import Group, Permission
from django.db import connection, transaction
from django.utils import timezone
from django.utils.ipv6 import clean_ipv6_address

from audit.actions import AuditAction, AuditOutcome
from audit.chain import ANCHOR_PK, HEAD_PK, canonical_details, chain_anchor, chain_head_from_events, event_hash
from audit.chain_keys import signing_key
from audit.keys import AuditReader
from audit.metrics import AUDIT_EVENTS, AUDIT_UNRECORDED, AUDIT_WRITE_FAILURES
from audit.models import AuditChainAnchor, AuditChainHead, AuditEvent
from audit.selectors import AuditFilters, audit_event_list
from sofiia.db.sqlite3.base import LONGEST_LOCK_PAUSE
from sofiia.lib.limits import budget_spend
from sofiia.lib.pagination import Order, Page, keyset_page
from sofiia.lib.request_id import current_request

logger = logging.getLogger(__name__)

SingletonRow = TypeVar("SingletonRow", AuditChainHead, AuditChainAnchor)

AUDITORS_GROUP = "auditors"
AUDITOR_PERMISSIONS = ("audit.view_auditevent",)
# Events a caller can repeat at will (a refused read or login, a replay, a rate-limit block)
# are recorded one by one up to this many per minute and source, then only counted.
REPEATS_RECORDED_PER_MINUTE = 20


def _storable_ip(address: str | None) -> str | None:
    """The address as both databases store and give it back: no IPv6 zone, canonical text."""
    if not address:
        return None
    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    # Django's IPv6 text (IPv4-mapped addresses in dotted form) is also PostgreSQL's.
    return clean_ipv6_address(str(parsed)) if parsed.version == 6 else str(parsed)


def _singleton_locked(model: type[SingletonRow], pk: int, initial: Callable[[], SingletonRow]) -> SingletonRow:
    """The one row of ``model``, locked until the current transaction ends.

    The row is created on first use (a new database, or one flushed by tests) from
    ``initial()``, so creating it twice at once is harmless.
    """
    try:
        return model.objects.select_for_update().get(pk=pk)
    except model.DoesNotExist:
        pass
    model.objects.bulk_create([initial()], ignore_conflicts=True)
    return model.objects.select_for_update().get(pk=pk)


def _chain_head_locked() -> AuditChainHead:
    def from_last_event() -> AuditChainHead:
        last = chain_head_from_events()
        return AuditChainHead(pk=HEAD_PK, last_event_id=last.event_id, last_hash=last.hash, last_ts=last.ts)

    return _singleton_locked(AuditChainHead, HEAD_PK, from_last_event)


_APPEND_SQL = """
WITH appended AS (
    INSERT INTO audit_auditevent
        (id, ts, actor, action, target_type, target_id, chat_id, outcome, request_id, ip, user_agent, details,
         key_id, prev_hash, hash)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::inet, %s, %s::jsonb, %s, %s, %s)
    RETURNING id, ts, hash
)
UPDATE audit_auditchainhead
SET last_event_id = appended.id, last_hash = appended.hash, last_ts = appended.ts
FROM appended
WHERE audit_auditchainhead.id = %s
"""


def _append(event: AuditEvent) -> None:
    """Insert ``event`` and move the chain head to it (the head is locked by the caller)."""
    if connection.vendor != "postgresql":
        event.save(force_insert=True)
        AuditChainHead.objects.filter(pk=HEAD_PK).update(last_event_id=event.id, last_hash=event.hash, last_ts=event.ts)
        return
    # Every writer waits while the head is locked, so the work done under the lock is what
    # limits audited throughput: one statement instead of two (see bench/audit_chain.md).
    params: list[Any] = [
        event.id, event.ts, event.actor, event.action, event.target_type, event.target_id, event.chat_id,
        event.outcome, event.request_id, event.ip, event.user_agent, json.dumps(event.details), event.key_id,
        event.prev_hash, event.hash, HEAD_PK,
    ]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(_APPEND_SQL, params)


def audit_record(
    *,
    actor: str,
    action: AuditAction,
    outcome: AuditOutcome = AuditOutcome.SUCCESS,
    target_type: str = "",
    target_id: str | int | None = None,
    chat_id: int | None = None,
    details: Mapping[str, Any] | None = None,
) -> AuditEvent | None:
    """Append one event to the audit chain; the request id, client address and user agent
    come from the current request, if any.

    Never raises: a failure to audit must not break the action being audited. It is
    logged and counted (``sofiia_audit_write_failures_total``) instead, and the event is
    written in a savepoint so the caller's transaction survives it.

    The event is linked to the chain head under the head's row lock, which is held until
    the caller's transaction commits: call this last in a transaction, never before
    slow work. Its id and timestamp are assigned under that lock, so ``(ts, id)`` order
    is commit order: an event that commits later never sorts before one already visible.
    """
    context = current_request()
    try:
        event = AuditEvent(
            actor=actor[:150],
            action=action,
            outcome=outcome,
            target_type=target_type,
            target_id="" if target_id is None else str(target_id),
            chat_id=chat_id,
            request_id=context.request_id if context else "",
            ip=_storable_ip(context.ip if context else None),
            user_agent=context.user_agent if context else "",
            details=canonical_details(details),
        )
        with transaction.atomic():
            head = _chain_head_locked()
            now = timezone.now()
            event.id = head.last_event_id + 1
            # The timestamp never goes back along the chain, even when instances' clocks differ.
            event.ts = max(now, head.last_ts) if head.last_ts is not None else now
            event.prev_hash = head.last_hash
            event.key_id = signing_key().key_id
            event.hash = event_hash(event)
            _append(event)
    except Exception:
        AUDIT_WRITE_FAILURES.labels(action=action).inc()
        logger.exception("audit.write_failed", extra={"action": action, "actor": actor, "chat_id": chat_id})
        return None
    AUDIT_EVENTS.labels(action=action).inc()
    return event


def audit_events_read(
    *, reader: AuditReader, filters: AuditFilters, order: Order, limit: int, cursor: str | None
) -> Page:
    """One page of the audit trail for ``reader``, itself recorded as an ``audit.read`` event.

    The cursor is bound to the filters, so it cannot be replayed against another
    selection. In ascending order the last page still carries a cursor: a reader polling
    forward with it sees every event that commits later, since later commits sort later.
    """
    scope = "audit:" + json.dumps(filters.as_dict(), sort_keys=True, separators=(",", ":"))
    page = keyset_page(
        audit_event_list(filters=filters),
        scope=scope,
        limit=limit,
        cursor=cursor,
        order=order,
        follow=order == "asc",
    )
    audit_record(
        actor=reader.actor,
        action=AuditAction.AUDIT_READ,
        target_type="audit",
        details={
            "via": "api",
            "key": reader.fingerprint,
            "filters": filters.as_dict(),
            "order": order,
            "limit": limit,
            "cursor": cursor is not None,
            "returned": len(page.items),
        },
    )
    return page


def audit_record_budgeted(*, budget_key: str, **event: Any) -> AuditEvent | None:
    """:func:`audit_record` for an event its source can repeat at will: the first
    ``REPEATS_RECORDED_PER_MINUTE`` per ``budget_key`` and minute are recorded, the rest are
    counted (``sofiia_audit_unrecorded_total``), so a flood of refusals or replays cannot turn
    into a flood of chained writes."""
    action: AuditAction = event["action"]
    if not budget_spend(
        scope="audit_repeat", key=f"audit:{action}:{budget_key}", limit=REPEATS_RECORDED_PER_MINUTE, seconds=60
    ):
        AUDIT_UNRECORDED.labels(action=action).inc()
        return None
    return audit_record(**event)


def audit_read_denied(*, reason: str) -> None:
    """Record a refused read of the audit trail (the key a caller sent is never stored),
    budgeted per client address."""
    context = current_request()
    audit_record_budgeted(
        budget_key=context.ip if context and context.ip else "unknown",
        actor="anonymous",
        action=AuditAction.AUDIT_READ,
        outcome=AuditOutcome.DENIED,
        target_type="audit",
        details={"via": "api", "reason": reason},
    )


@dataclass(frozen=True)
class PruneBatch:
    deleted: int
    first_id: int
    last_id: int


@dataclass(frozen=True)
class PruneResult:
    deleted: int
    batches: int
    first_id: int | None
    last_id: int | None
    seconds: float

    @property
    def rate(self) -> float:
        return self.deleted / self.seconds if self.seconds > 0 else float(self.deleted)


def _chain_anchor_locked() -> AuditChainAnchor:
    def genesis() -> AuditChainAnchor:
        start = chain_anchor()
        return AuditChainAnchor(pk=ANCHOR_PK, event_id=start.event_id, hash=start.hash, ts=start.ts)

    return _singleton_locked(AuditChainAnchor, ANCHOR_PK, genesis)


def _prune_batch(*, older_than: datetime, batch_size: int) -> tuple[PruneBatch | None, bool]:
    """Delete the next batch of the chain's oldest events that are older than ``older_than``.

    Returns the batch (``None`` when there was nothing to delete) and whether more may follow.
    On PostgreSQL this is ``audit_prune_batch``, the database's own function and the one way
    events may leave it (migration 0007); SQLite has no such guard.
    """
    if connection.vendor == "postgresql":
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT * FROM audit_prune_batch(%s, %s)", [older_than, batch_size])
            deleted, first_id, last_id, more = cursor.fetchone()
        if not deleted:
            return None, False
        return PruneBatch(deleted=deleted, first_id=first_id, last_id=last_id), bool(more)
    with transaction.atomic():
        anchor = _chain_anchor_locked()
        rows = list(
            AuditEvent.objects.filter(id__gt=anchor.event_id)
            .order_by("id")
            .values_list("id", "ts", "hash")[:batch_size]
        )
        # Only ever a prefix of the chain, so the anchor keeps the rest verifiable: stop at
        # the first event inside the retention window even if older ones follow it.
        expired = []
        for row in rows:
            if row[1] >= older_than:
                break
            expired.append(row)
        if not expired:
            return None, False
        first_id, last_id = expired[0][0], expired[-1][0]
        deleted = AuditEvent.objects.filter(id__gte=first_id, id__lte=last_id).delete()[0]
        AuditChainAnchor.objects.filter(pk=ANCHOR_PK).update(
            event_id=last_id,
            hash=expired[-1][2],
            ts=expired[-1][1],
            pruned_total=anchor.pruned_total + deleted,
            updated_at=timezone.now(),
        )
    return PruneBatch(deleted=deleted, first_id=first_id, last_id=last_id), len(expired) == len(rows) == batch_size


# A waiting writer retries at least this often, so a prune's pause this long lets it in.
SQLITE_WRITER_PAUSE = LONGEST_LOCK_PAUSE


def _prune_pause(*, deleted: int, elapsed: float, rate: float | None) -> float:
    """Seconds to wait before the next batch."""
    # SQLite has one write lock and no queue for it: a writer that found it taken retries
    # after a pause of up to SQLITE_WRITER_PAUSE, and would find the next batch holding it
    # again. A pause as long lets every waiting send in first.
    pause = SQLITE_WRITER_PAUSE if connection.vendor == "sqlite" else 0.0
    if rate is not None:
        # Ahead of the rate by this long: what has been deleted should have taken this much.
        pause = max(pause, deleted / rate - elapsed)
    return pause


def audit_prune(
    *,
    older_than: datetime,
    batch_size: int,
    rate: float | None = None,
    on_batch: Callable[[PruneBatch], None] | None = None,
) -> PruneResult:
    """Delete audit events older than ``older_than``, oldest first, ``batch_size`` per transaction.

    Each batch is a short transaction of its own that deletes a range of ids and moves
    the chain anchor, so writers (who lock only the chain head) never wait on a prune
    for longer than one batch's row locks, and an interrupted prune leaves a verifiable
    chain. With ``rate`` it pauses between batches so as to delete at most that many events
    a second on average: a prune in working hours can be made as gentle as wanted. The
    prune itself is recorded as an ``audit.prune`` event.
    """
    started = time.monotonic()
    deleted = batches = 0
    first_id: int | None = None
    last_id: int | None = None
    more = True
    while more:
        batch, more = _prune_batch(older_than=older_than, batch_size=batch_size)
        if batch is None:
            break
        deleted += batch.deleted
        batches += 1
        first_id = batch.first_id if first_id is None else first_id
        last_id = batch.last_id
        if on_batch is not None:
            on_batch(batch)
        if more:
            pause = _prune_pause(deleted=deleted, elapsed=time.monotonic() - started, rate=rate)
            if pause > 0:
                time.sleep(pause)
    result = PruneResult(
        deleted=deleted, batches=batches, first_id=first_id, last_id=last_id, seconds=time.monotonic() - started
    )
    audit_record(
        actor="system",
        action=AuditAction.AUDIT_PRUNE,
        target_type="audit",
        details={
            "older_than": older_than,
            "deleted": deleted,
            "batches": batches,
            "first_id": first_id,
            "last_id": last_id,
        },
    )
    return result


def auditors_group_ensure() -> Group:
    """The ``auditors`` group with view-only access to audit events, created if missing.

    A migration creates it; this makes it exist again after anything that empties the
    auth tables (a test database flush, a restore without it).
    """
    group, _ = Group.objects.get_or_create(name=AUDITORS_GROUP)
    for name in AUDITOR_PERMISSIONS:
        app_label, codename = name.split(".")
        permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
        if permission is not None:
            group.permissions.add(permission)
    return group
