"""The hash chain that makes the audit trail tamper-evident.

Every event stores ``prev_hash``, the hash of the event before it, and ``hash``, the
HMAC-SHA256 of its own canonical encoding (which includes ``prev_hash``) under the chain key
named by its ``key_id`` (``audit.chain_keys``; version 2). Events written before the chain
had a key carry no ``key_id`` and a plain SHA-256 (version 1); once a keyed event exists, an
unkeyed one after it is a break, and the newest link must be keyed (every event written
since chains have keys is), so nobody can re-hash the tail, or the whole chain, without the
key. Event ids are the
positions in the chain: contiguous, assigned under the chain-head lock. Editing an event
breaks its own hash; deleting or reordering events breaks the link of the next one;
deleting events at the end leaves the chain head pointing past the last event. Pruning
deletes a prefix and records the last deleted event as the anchor the oldest kept
event links to; each prune batch also writes a keyed ``audit.prune`` event naming that
anchor, and an anchor no such event names is a break (the oldest events deleted and the
anchor moved by hand).

The encoding is a format: once events are hashed with it, it must never change. A new
encoding would get a new version number and verification would dispatch on it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.utils.dateparse import parse_datetime

from audit.actions import AuditAction
from audit.chain_keys import chain_key, chain_keys
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


def _integral_float(text: str) -> int | float:
    # _canonical's rule, applied while parsing: an integral float is the integer.
    number = float(text)
    return int(number) if number.is_integer() else number


# Built once: json.loads and json.dumps with options build a decoder and an encoder per call,
# which costs as much as the work itself. The encoder is json.dumps' own C one-shot encoder
# (without the circular-reference check, which parsed JSON cannot need), else the same
# options through JSONEncoder where there is no C accelerator.
_details_decoder = json.JSONDecoder(parse_float=_integral_float)
_details_encoder = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_details_c_encoder = (
    c_make_encoder(None, _details_encoder.default, encode_basestring, None, ":", ",", True, False, False)
    if c_make_encoder is not None
    else None
)
_DETAILS_CACHE_SIZE = 1024
_details_cache: dict[str, str] = {}


def details_encoding(stored: str) -> str:
    """The canonical encoding of ``details`` from the JSON text the database stores."""
    encoded = _details_cache.get(stored)
    if encoded is not None:
        return encoded
    value = _details_decoder.decode(stored)
    encoded = "".join(_details_c_encoder(value, 0)) if _details_c_encoder else _details_encoder.encode(value)
    # Many events carry the same details ({} above all): remember the last distinct few.
    if len(_details_cache) >= _DETAILS_CACHE_SIZE:
        _details_cache.clear()
    _details_cache[stored] = encoded
    return encoded


def ts_encoding(stored: str) -> str:
    """``format_ts`` of a timestamp as SQLite stores it (UTC, ``YYYY-MM-DD HH:MM:SS[.ffffff]``)."""
    if len(stored) == 26 and stored[10] == " " and stored[19] == ".":
        return f"{stored[:10]}T{stored[11:]}Z"
    if len(stored) == 19 and stored[10] == " ":
        return f"{stored[:10]}T{stored[11:]}.000000Z"
    parsed = parse_datetime(stored)
    if parsed is None:
        raise ValueError(f"not a timestamp: {stored!r}")
    return format_ts(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))


def link_encoding(
    event_id: int,
    ts: str,
    actor: str,
    action: str,
    target_type: str,
    target_id: str,
    chat_id: int | None,
    outcome: str,
    request_id: str,
    ip: str | None,
    user_agent: str,
    details: str,
    key_id: str,
    prev_hash: str,
) -> str:
    """``event_hash``'s canonical encoding, written out field by field in sorted-key order.

    ``ts`` is already ``format_ts``'d and ``details`` already ``details_encoding``'d. This is
    the fast path for walking and seeding millions of events; ``event_hash`` stays the
    definition, and tests/audit/test_row_path.py holds the two to the same bytes.
    """
    kid = f'"kid":{encode_basestring(key_id)},' if key_id else ""
    return (
        f'{{"action":{encode_basestring(action)},"actor":{encode_basestring(actor)},'
        f'"chat_id":{"null" if chat_id is None else int(chat_id)},"details":{details},"id":{int(event_id)},'
        f'"ip":{"null" if ip is None else encode_basestring(ip)},{kid}"outcome":{encode_basestring(outcome)},'
        f'"prev_hash":{encode_basestring(prev_hash)},"request_id":{encode_basestring(request_id)},'
        f'"target_id":{encode_basestring(target_id)},"target_type":{encode_basestring(target_type)},'
        f'"ts":{encode_basestring(ts)},"user_agent":{encode_basestring(user_agent)},"v":{2 if key_id else 1}}}'
    )


def link_signer(secret: bytes | None) -> Callable[[str], str]:
    """The link of an encoding: HMAC-SHA256 under ``secret``, or SHA-256 without one (version 1).

    The HMAC's keyed state is computed once and copied per link.
    """
    if secret is None:
        return lambda encoded: hashlib.sha256(encoded.encode("utf-8")).hexdigest()
    keyed = hmac.new(secret, digestmod=hashlib.sha256)

    def sign(encoded: str) -> str:
        link = keyed.copy()
        link.update(encoded.encode("utf-8"))
        return link.hexdigest()

    return sign


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


# One row per event, in the order link_encoding takes them, then the stored hash. The
# database renders the timestamp where it can: text is what the encoding needs.
_ROW_COLUMNS = (
    "id, {ts}, actor, action, target_type, target_id, chat_id, outcome, request_id, ip, user_agent, "
    "details, key_id, prev_hash, hash"
)
_TS_SQL = {
    "postgresql": """to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')""",
    # Django stores UTC as "YYYY-MM-DD HH:MM:SS[.ffffff]"; anything else (and the CAST keeps
    # Django's datetime converter away) is left to ts_encoding.
    "sqlite": (
        "CASE WHEN length(ts) = 26 AND substr(ts, 20, 1) = '.' THEN substr(ts, 1, 10) || 'T' || substr(ts, 12) || 'Z' "
        "WHEN length(ts) = 19 THEN substr(ts, 1, 10) || 'T' || substr(ts, 12) || '.000000Z' "
        "ELSE CAST(ts AS TEXT) END"
    ),
}

Row = Sequence[Any]
ProgressCallback = Callable[[int, int], None]


def _rows_after(event_id: int, *, upto: int, chunk_size: int) -> Iterator[list[Row]]:
    # Keyset chunks rather than one cursor: each query is short, so verification holds
    # no snapshot or cursor open on a busy table however long the chain is. Rows, not
    # model instances: a million of those cost more than the hashing.
    columns = _ROW_COLUMNS.format(ts=_TS_SQL.get(connection.vendor, "ts"))
    query = f"SELECT {columns} FROM {AuditEvent._meta.db_table} WHERE id > %s AND id <= %s ORDER BY id LIMIT %s"  # noqa: S608
    with connection.cursor() as cursor, ThreadPoolExecutor(max_workers=1) as fetcher:

        def fetch(after: int) -> list[Row]:
            cursor.execute(query, [after, upto, chunk_size])
            return cursor.fetchall()

        # PostgreSQL finds and sends the next chunk in its own process while this one is
        # hashed (a third faster on two cores); SQLite works inside this process, under the
        # same interpreter lock as the hashing, so there a second thread would gain nothing.
        ahead = connection.vendor == "postgresql"
        pending: Future[list[Row]] | None = None
        while True:
            chunk = pending.result() if pending is not None else fetch(event_id)
            pending = None
            if len(chunk) == chunk_size and ahead:
                pending = fetcher.submit(fetch, chunk[-1][0])
            if chunk:
                yield chunk
            if len(chunk) < chunk_size:
                return
            event_id = chunk[-1][0]


def _row_ts(value: Any) -> str:
    if isinstance(value, datetime):
        return format_ts(value)
    text = str(value)
    return text if text.endswith("Z") else ts_encoding(text)


def _unlinked(anchor: ChainLink, previous_id: int, event_id: int) -> str:
    if previous_id == anchor.event_id and anchor.event_id:
        after = f"the prune anchor (event #{anchor.event_id})"
    elif previous_id == anchor.event_id:
        after = "the start of the chain"
    else:
        after = f"event #{previous_id}"
    missing = (
        f"events #{previous_id + 1}..#{event_id - 1} are missing"
        if event_id - previous_id > 1
        else "the event before it was replaced, or events were reordered"
    )
    return f"event #{event_id}: does not link to {after} ({missing})"


def _walk(
    anchor: ChainLink, head: ChainLink, *, chunk_size: int, on_progress: ProgressCallback | None = None
) -> ChainReport:
    previous_id, previous_hash = anchor.event_id, anchor.hash
    checked = 0
    first_id: int | None = None
    keyed = False
    last_keyed = False
    signers = {key.key_id: link_signer(key.secret) for key in chain_keys()}
    unkeyed = link_signer(None)
    total = max(head.event_id - anchor.event_id, 0)
    for chunk in _rows_after(anchor.event_id, upto=head.event_id, chunk_size=chunk_size):
        if first_id is None:
            first_id = chunk[0][0]
        for row in chunk:
            event_id, key_id, prev_hash = row[0], row[12], row[13]
            if key_id:
                sign = signers.get(key_id)
                if sign is None:
                    detail = (
                        f"event #{event_id}: signed with chain key {key_id!r}, which SOFIIA_AUDIT_CHAIN_KEY "
                        "does not hold (add it back to verify older events)"
                    )
                    return ChainReport(
                        checked, first_id, previous_id, anchor, ChainBreak(event_id, "unknown_key", detail)
                    )
                keyed = True
            elif keyed:
                detail = (
                    f"event #{event_id}: has no chain key after keyed events (the tail was re-hashed without the key)"
                )
                return ChainReport(checked, first_id, previous_id, anchor, ChainBreak(event_id, "unkeyed", detail))
            else:
                sign = unkeyed
            ts = row[1]
            if not (isinstance(ts, str) and ts.endswith("Z")):
                try:
                    ts = _row_ts(ts)
                except ValueError:
                    ts = ""  # not a timestamp: it cannot be the one that was hashed
            encoded = link_encoding(
                event_id, ts, row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9], row[10],
                details_encoding(row[11]) if isinstance(row[11], str) else _details_value(row[11]), key_id, prev_hash,
            )  # fmt: skip
            if sign(encoded) != row[14]:
                detail = f"event #{event_id}: its contents do not match its hash (the event was edited or moved)"
                return ChainReport(checked, first_id, previous_id, anchor, ChainBreak(event_id, "edited", detail))
            if prev_hash != previous_hash:
                detail = _unlinked(anchor, previous_id, event_id)
                return ChainReport(checked, first_id, previous_id, anchor, ChainBreak(event_id, "unlinked", detail))
            previous_id, previous_hash = event_id, row[14]
            last_keyed = bool(key_id)
            checked += 1
        if on_progress is not None:
            on_progress(checked, total)
    last_id = previous_id if checked else None
    if previous_id != head.event_id or previous_hash != head.hash:
        detail = (
            f"the chain head is event #{head.event_id} but the chain ends at "
            f"{'event #' + str(previous_id) if checked else 'the anchor'} "
            "(events at the end were deleted or replaced)"
        )
        return ChainReport(checked, first_id, last_id, anchor, ChainBreak(head.event_id, "truncated", detail))
    if checked and not last_keyed:
        # Every event written since chains have keys is keyed, and an unkeyed link after a
        # keyed one is a break: unkeyed links can only be the oldest part of a chain whose
        # newest link is keyed. A chain that ends unkeyed was re-hashed without the key.
        detail = (
            f"event #{previous_id}: the chain ends with a link that has no chain key (keyed events were "
            "re-hashed without the key; a trail from before chain keys is sealed by writing any event)"
        )
        return ChainReport(checked, first_id, last_id, anchor, ChainBreak(previous_id, "unkeyed", detail))
    if anchor.event_id and anchor_prune_record(anchor, head) is None:
        detail = (
            f"the prune anchor (event #{anchor.event_id}) was moved without a recorded prune: no keyed "
            f"{AuditAction.AUDIT_PRUNE} event names it (the oldest events were deleted and the anchor moved)"
        )
        return ChainReport(checked, first_id, last_id, anchor, ChainBreak(anchor.event_id, "anchor_moved", detail))
    return ChainReport(checked, first_id, last_id, anchor, None)


def anchor_prune_record(anchor: ChainLink, head: ChainLink) -> int | None:
    """The id of the keyed ``audit.prune`` event, among the kept events up to ``head``, that
    records the prune which left the chain anchored at ``anchor``; ``None`` when there is none.

    Every prune batch records the last event it deleted in the batch's own transaction
    (``audit.services``), so a legitimate anchor always has its record after it. Someone
    who deletes the oldest events and moves the anchor cannot write that record without
    the chain key. The walk proves the record's own link; a record written before
    ``anchor_hash`` was recorded names the anchor by id alone, which is enough, since the
    oldest kept event's link pins the anchor's hash.
    """
    records = (
        AuditEvent.objects.filter(
            action=AuditAction.AUDIT_PRUNE,
            id__gt=anchor.event_id,
            id__lte=head.event_id,
            details__last_id=anchor.event_id,
        )
        .exclude(key_id="")
        .order_by("id")
        .values_list("id", "details")
    )
    for event_id, details in records:
        if isinstance(details, dict) and details.get("anchor_hash", anchor.hash) == anchor.hash:
            return int(event_id)
    return None


def _details_value(value: Any) -> str:
    # A driver that hands JSON back already parsed.
    return json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def chain_verify(
    *, chunk_size: int = 10_000, attempts: int = 3, on_progress: ProgressCallback | None = None
) -> ChainReport:
    """Walk the chain from the prune anchor to the chain head and report the first break.

    The head is read first and only events up to it are walked, so events appended
    meanwhile do not matter. A prune running meanwhile moves the anchor: the walk then
    starts again from the new anchor.

    ``on_progress(checked, about)`` is called after every chunk with the events checked so
    far and the walk's length as the ids say (exact unless events are missing).
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
        report = _walk(anchor, head, chunk_size=chunk_size, on_progress=on_progress)
        if report.ok or chain_anchor() == anchor:
            return report
    assert report is not None
    return report
