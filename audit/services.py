from __future__ import annotations

import ipaddress
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.db import connection, transaction
from django.utils import timezone
from django.utils.ipv6 import clean_ipv6_address

from audit.actions import AuditAction, AuditOutcome
from audit.chain import ANCHOR_PK, HEAD_PK, canonical_details, chain_anchor, chain_head_from_events, event_hash
from audit.chain_keys import signing_key
from audit.content import bounded_details, column_text
from audit.keys import AuditReader
from audit.metrics import AUDIT_EVENTS, AUDIT_UNRECORDED, AUDIT_WRITE_FAILURES
from audit.models import AuditChainAnchor, AuditChainHead, AuditEvent
from audit.selectors import AuditFilters, audit_event_list
from sofiia.lib.errors import DEPENDENCY_RETRY_AFTER_SECONDS, ApplicationError, is_database_outage
from sofiia.lib.limits import budget_spend, limiter_acquire
from sofiia.lib.lock_wait import LONGEST_LOCK_PAUSE
from sofiia.lib.pagination import Order, Page, keyset_page
from sofiia.lib.request_id import current_request
from sofiia.lib.sliding_window import Window

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


class AuditUnavailable(ApplicationError):
    """The audit event could not be written, so the action it records was not done."""

    status = 503
    code = "audit_unavailable"


def _event_fields(
    *, actor: str, target_type: str, target_id: str | int | None, details: Mapping[str, Any] | None
) -> dict[str, Any]:
    context = current_request()
    return {
        "actor": column_text(actor, max_length=150),
        "target_type": column_text(target_type, max_length=64),
        "target_id": "" if target_id is None else column_text(str(target_id), max_length=64),
        "request_id": column_text(context.request_id, max_length=128) if context else "",
        "ip": _storable_ip(context.ip if context else None),
        "user_agent": column_text(context.user_agent, max_length=512) if context else "",
        "details": canonical_details(bounded_details(details)),
    }


def audit_record(
    *,
    actor: str,
    action: AuditAction,
    outcome: AuditOutcome = AuditOutcome.SUCCESS,
    target_type: str = "",
    target_id: str | int | None = None,
    chat_id: int | None = None,
    details: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the audit chain; the request id, client address and user agent
    come from the current request, if any.

    Call it inside the action's ``transaction.atomic()``: the event is written in that
    transaction, so the action commits if and only if its event does. When the event cannot
    be written this raises, and the caller's transaction rolls back: a database outage as
    the database's own error (answered ``503 database_unavailable``), anything else as
    :class:`AuditUnavailable` (``503 audit_unavailable``). Content never makes the write
    fail: every text is made storable and bounded (``audit.content``).

    The event is linked to the chain head under the head's row lock, which is held until
    the caller's transaction commits: call this last in a transaction, never before
    slow work. Its id and timestamp are assigned under that lock, so ``(ts, id)`` order
    is commit order: an event that commits later never sorts before one already visible.
    """
    try:
        event = AuditEvent(
            action=action,
            outcome=outcome,
            chat_id=chat_id,
            **_event_fields(actor=actor, target_type=target_type, target_id=target_id, details=details),
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
    except Exception as exc:
        AUDIT_WRITE_FAILURES.labels(action=action).inc()
        logger.exception("audit.write_failed", extra={"action": action, "chat_id": chat_id})
        if is_database_outage(exc):
            raise
        raise AuditUnavailable(
            "The audit trail could not record this action, so it was not done; retry shortly.",
            headers={"Retry-After": str(DEPENDENCY_RETRY_AFTER_SECONDS)},
        ) from exc
    AUDIT_EVENTS.labels(action=action).inc()
    return event


class AuditReadLimited(ApplicationError):
    status = 429
    code = "rate_limited"


class AuditReadLimitUnavailable(ApplicationError):
    status = 503
    code = "rate_limit_unavailable"


AUDIT_READ_SCOPE = "audit_read"


def audit_read_admit(*, reader: str) -> None:
    """Spend one read of the audit trail for ``reader`` (an audit key's fingerprint, a user)
    and for the client address (``SOFIIA_RATE_LIMIT_AUDIT_READ`` each), or refuse it.

    Every read that is served is recorded, so reads are limited here instead of their
    records being budgeted. A refusal (:class:`AuditReadLimited`, 429 with ``Retry-After``)
    is itself recorded within the refusals' budget. When the limiter cannot answer, reads
    go on only with ``SOFIIA_RATE_LIMIT_FAIL_OPEN``: they are still recorded one by one.
    """
    policy = settings.SOFIIA_RATE_LIMIT_AUDIT_READ
    context = current_request()
    address = context.ip if context and context.ip else "unknown"
    windows = [
        Window("reader", f"audit-read:reader:{reader}", policy.limit, policy.window),
        Window("address", f"audit-read:address:{address}", policy.limit, policy.window),
    ]
    outcome = limiter_acquire(windows, consume=True)
    if outcome is None:
        if settings.SOFIIA_RATE_LIMIT_FAIL_OPEN:
            return
        raise AuditReadLimitUnavailable(
            "Reads of the audit trail cannot be counted right now; retry shortly.",
            headers={"Retry-After": str(DEPENDENCY_RETRY_AFTER_SECONDS)},
        )
    if outcome.allowed:
        return
    assert outcome.blocked_scope is not None
    retry_after = max(1, math.ceil(outcome.state(outcome.blocked_scope).reset_after))
    audit_record_budgeted(
        budget_key=f"limited:{address}",
        actor=reader,
        action=AuditAction.AUDIT_READ,
        outcome=AuditOutcome.DENIED,
        target_type="audit",
        details={"reason": "rate_limited", "per": outcome.blocked_scope, "retry_after": retry_after},
    )
    raise AuditReadLimited(
        f"Too many reads of the audit trail; retry in {retry_after} s.",
        extra={"scope": AUDIT_READ_SCOPE, "retry_after": retry_after},
        headers={"Retry-After": str(retry_after)},
    )


def audit_events_read(
    *, reader: AuditReader, filters: AuditFilters, order: Order, limit: int, cursor: str | None
) -> Page:
    """One page of the audit trail for ``reader``, itself recorded as an ``audit.read`` event.

    The page is not served unless its record is written: a failure to record raises
    (see :func:`audit_record`). The cursor is bound to the filters, so it cannot be replayed
    against another selection. In ascending order the last page still carries a cursor: a
    reader polling forward with it sees every event that commits later, since later commits
    sort later.
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


def _prune_recorded(*, older_than: datetime, batch: PruneBatch, number: int) -> None:
    """Record a batch in its own transaction, naming the anchor it left: ``verify_audit``
    refuses an anchor that no such keyed record names."""
    anchor = AuditChainAnchor.objects.get(pk=ANCHOR_PK)
    audit_record(
        actor="system",
        action=AuditAction.AUDIT_PRUNE,
        target_type="audit",
        details={
            "older_than": older_than,
            "batch": number,
            "deleted": batch.deleted,
            "first_id": batch.first_id,
            "last_id": batch.last_id,
            "anchor_hash": anchor.hash,
        },
    )


def _prune_batch(*, older_than: datetime, batch_size: int, number: int) -> tuple[PruneBatch | None, bool]:
    """Delete the next batch of the chain's oldest events that are older than ``older_than``,
    and record it, in one transaction: the events leave if and only if the record is written.

    Returns the batch (``None`` when there was nothing to delete) and whether more may follow.
    On PostgreSQL this is ``audit_prune_batch``, the database's own function and the one way
    events may leave it (migration 0007); SQLite has no such guard.
    """
    if connection.vendor == "postgresql":
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT * FROM audit_prune_batch(%s, %s)", [older_than, batch_size])
                deleted, first_id, last_id, more = cursor.fetchone()
            if not deleted:
                return None, False
            batch = PruneBatch(deleted=deleted, first_id=first_id, last_id=last_id)
            _prune_recorded(older_than=older_than, batch=batch, number=number)
        return batch, bool(more)
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
        batch = PruneBatch(deleted=deleted, first_id=first_id, last_id=last_id)
        _prune_recorded(older_than=older_than, batch=batch, number=number)
    return batch, len(expired) == len(rows) == batch_size


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
    a second on average: a prune in working hours can be made as gentle as wanted. Each
    batch is recorded as an ``audit.prune`` event in its own transaction, naming the events
    it deleted and the anchor it left (a prune that deletes nothing records one event).
    """
    started = time.monotonic()
    deleted = batches = 0
    first_id: int | None = None
    last_id: int | None = None
    more = True
    while more:
        batch, more = _prune_batch(older_than=older_than, batch_size=batch_size, number=batches + 1)
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
    if not batches:
        # Nothing was deleted, and the record says so without naming the anchor: a record of
        # no prune must never vouch for an anchor someone else moved.
        with transaction.atomic():
            audit_record(
                actor="system",
                action=AuditAction.AUDIT_PRUNE,
                target_type="audit",
                details={"older_than": older_than, "deleted": 0, "batches": 0},
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
