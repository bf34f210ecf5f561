"""The hash chain that makes the audit trail tamper-evident.

Every event stores ``prev_hash``, the hash of the event before it, and ``hash``, the
HMAC-SHA256 of its own canonical encoding (which includes ``prev_hash``) under the chain key
named by its ``key_id`` (``audit.chain_keys``; version 2). Events written before the chain
had a key carry no ``key_id`` and a plain SHA-256 (version 1); once a keyed event exists, an
unkeyed one after it is a break, so nobody can re-hash the tail without the key. Event ids are the
positions in the chain: contiguous, assigned under the chain-head lock. Editing an event
breaks its own hash; deleting or reordering events breaks the link of the next one;
deleting events at the end leaves the chain head pointing past the last event. Pruning
deletes a prefix and records the last deleted event as the anchor the oldest kept
event links to.

The encoding is a format: once events are hashed with it, it must never change. A new
encoding would get a new version number and verification would dispatch on it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from audit.chain_keys import chain_key
from audit.models import AuditChainAnchor, AuditChainHead, AuditEvent

GENESIS_HASH = "0" * 64
HEAD_PK = 1
ANCHOR_PK = 1


def canonical_details(details: Mapping[str, Any] | None) -> dict[str, Any]:
    """``details`` as plain JSON values, the exact form that is stored and hashed.

    Dates, decimals and UUIDs become strings; NaN and infinities are refused, since
    neither database stores them as JSON.
    """
    value = json.loads(json.dumps(dict(details or {}), cls=DjangoJSONEncoder, allow_nan=False))
    return _canonical(value)


def _canonical(value: Any) -> Any:
    # PostgreSQL's jsonb gives 1e16 back as 10000000000000000 and 2.0 back as 2.0, so an
    # integral float would not hash the same after a round trip; integers are the one form.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    return value


def format_ts(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class UnknownChainKey(Exception):
    pass


def event_hash(event: Any) -> str:
    """The event's link: its canonical encoding (sorted-key compact JSON, UTF-8) under the
    HMAC key its ``key_id`` names, or plain SHA-256 for an event without one (version 1).
    ``UnknownChainKey`` when this instance does not have the named key."""
    key_id = getattr(event, "key_id", "") or ""
    document = {
        "v": 2 if key_id else 1,
        "id": event.id,
        "ts": format_ts(event.ts),
        "actor": event.actor,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "chat_id": event.chat_id,
        "outcome": event.outcome,
        "request_id": event.request_id,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "details": _canonical(event.details),
        "prev_hash": event.prev_hash,
    }
    if key_id:
        document["kid"] = key_id
    encoded = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if not key_id:
        return hashlib.sha256(encoded.encode("utf-8")).hexdigest()
    key = chain_key(key_id)
    if key is None:
        raise UnknownChainKey(key_id)
    return key.sign(encoded.encode("utf-8"))


@dataclass(frozen=True)
class ChainLink:
    """An event id and hash: the chain head, the prune anchor, or genesis (id 0)."""

    event_id: int
    hash: str
    ts: datetime | None = None


GENESIS = ChainLink(event_id=0, hash=GENESIS_HASH)


def chain_anchor() -> ChainLink:
    """Where the kept part of the chain starts: the last pruned event, or genesis."""
    anchor = AuditChainAnchor.objects.filter(pk=ANCHOR_PK).first()
    if anchor is None:
        return GENESIS
    return ChainLink(event_id=anchor.event_id, hash=anchor.hash, ts=anchor.ts)


def chain_head_from_events() -> ChainLink:
    """The chain head as the stored events say it is: the last event, else the anchor."""
    last = AuditEvent.objects.order_by("-id").only("id", "hash", "ts").first()
    if last is None:
        return chain_anchor()
    return ChainLink(event_id=last.id, hash=last.hash, ts=last.ts)


def chain_head() -> ChainLink | None:
    head = AuditChainHead.objects.filter(pk=HEAD_PK).first()
    if head is None:
        return None
    return ChainLink(event_id=head.last_event_id, hash=head.last_hash, ts=head.last_ts)


@dataclass(frozen=True)
class ChainBreak:
    """The first place where the chain does not hold."""

    event_id: int | None
    kind: str
    detail: str

    def __str__(self) -> str:
        return self.detail


@dataclass(frozen=True)
class ChainReport:
    checked: int
    first_id: int | None
    last_id: int | None
    anchor: ChainLink
    broken: ChainBreak | None

    @property
    def ok(self) -> bool:
        return self.broken is None


def _events_after(event_id: int, *, upto: int, chunk_size: int) -> Iterator[AuditEvent]:
    # Keyset chunks rather than one cursor: each query is short, so verification holds
    # no snapshot or cursor open on a busy table however long the chain is.
    while True:
        chunk = list(AuditEvent.objects.filter(id__gt=event_id, id__lte=upto).order_by("id")[:chunk_size])
        yield from chunk
        if len(chunk) < chunk_size:
            return
        event_id = chunk[-1].id


def _walk(anchor: ChainLink, head: ChainLink, *, chunk_size: int) -> ChainReport:
    previous = anchor
    checked = 0
    first_id: int | None = None
    keyed = False
    for event in _events_after(anchor.event_id, upto=head.event_id, chunk_size=chunk_size):
        if first_id is None:
            first_id = event.id
        if keyed and not event.key_id:
            detail = f"event #{event.id}: has no chain key after keyed events (the tail was re-hashed without the key)"
            return ChainReport(checked, first_id, previous.event_id, anchor, ChainBreak(event.id, "unkeyed", detail))
        keyed = keyed or bool(event.key_id)
        try:
            link = event_hash(event)
        except UnknownChainKey:
            detail = (
                f"event #{event.id}: signed with chain key {event.key_id!r}, which SOFIIA_AUDIT_CHAIN_KEY "
                "does not hold (add it back to verify older events)"
            )
            return ChainReport(
                checked, first_id, previous.event_id, anchor, ChainBreak(event.id, "unknown_key", detail)
            )
        if link != event.hash:
            detail = f"event #{event.id}: its contents do not match its hash (the event was edited or moved)"
            return ChainReport(checked, first_id, previous.event_id, anchor, ChainBreak(event.id, "edited", detail))
        if event.prev_hash != previous.hash:
            if previous is anchor and anchor.event_id:
                after = f"the prune anchor (event #{anchor.event_id})"
            elif previous is anchor:
                after = "the start of the chain"
            else:
                after = f"event #{previous.event_id}"
            missing = (
                f"events #{previous.event_id + 1}..#{event.id - 1} are missing"
                if event.id - previous.event_id > 1
                else "the event before it was replaced, or events were reordered"
            )
            detail = f"event #{event.id}: does not link to {after} ({missing})"
            return ChainReport(checked, first_id, previous.event_id, anchor, ChainBreak(event.id, "unlinked", detail))
        previous = ChainLink(event_id=event.id, hash=event.hash, ts=event.ts)
        checked += 1
    last_id = previous.event_id if checked else None
    if previous.event_id != head.event_id or previous.hash != head.hash:
        detail = (
            f"the chain head is event #{head.event_id} but the chain ends at "
            f"{'event #' + str(previous.event_id) if checked else 'the anchor'} "
            "(events at the end were deleted or replaced)"
        )
        return ChainReport(checked, first_id, last_id, anchor, ChainBreak(head.event_id, "truncated", detail))
    return ChainReport(checked, first_id, last_id, anchor, None)


def chain_verify(*, chunk_size: int = 2000, attempts: int = 3) -> ChainReport:
    """Walk the chain from the prune anchor to the chain head and report the first break.

    The head is read first and only events up to it are walked, so events appended
    meanwhile do not matter. A prune running meanwhile moves the anchor: the walk then
    starts again from the new anchor.
    """
    report: ChainReport | None = None
    for _ in range(attempts):
        anchor = chain_anchor()
        head = chain_head()
        if head is None:
            # Every append moves the head, so only an empty chain has none.
            last = chain_head_from_events()
            if last.event_id != anchor.event_id:
                detail = f"the chain head is missing while events up to #{last.event_id} exist"
                return ChainReport(0, None, None, anchor, ChainBreak(None, "no_head", detail))
            head = anchor
        report = _walk(anchor, head, chunk_size=chunk_size)
        if report.ok or chain_anchor() == anchor:
            return report
    assert report is not None
    return report
