"""The walk reads rows, not model instances, and encodes them field by field: the links it
computes must be exactly the ones ``event_hash`` (the definition) gives, for every value an
event can hold, after the round trip through either database."""

from __future__ import annotations

import json
import re
from io import StringIO
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from audit import chain
from audit.actions import AuditAction
from audit.chain import (
    chain_verify,
    details_encoding,
    event_hash,
    format_ts,
    link_encoding,
    link_signer,
    ts_encoding,
)
from audit.chain_keys import chain_key, signing_key
from audit.models import AuditEvent
from audit.services import _storable_ip, audit_record
from tests.audit.helpers import as_intruder, seed_events

AWKWARD_DETAILS = [
    {},
    {"text": 'Привіт, світ — «лапки» "quotes" \\ back\\slash \t tab \n newline \u0001 \u2028 😀'},
    {"nested": {"b": [1, 2.0, {"z": None, "a": True}], "a": {"deeper": {"x": -0.0, "y": 1e16}}}},
    {"float": 2.0, "fraction": 0.1, "small": 1.5e-7, "big": 1.7976931348623157e308, "neg": -3.0},
    {"empty": "", "list": [], "dict": {}, "zero": 0, "false": False},
    {"Z": 1, "a": 2, "é": 3, "10": 4, "9": 5},
]

IPS = ["192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1", None, "10.0.0.1", "fe80::1"]


def awkward_events(*, keyed: bool) -> list[SimpleNamespace]:
    ts = timezone.now().replace(microsecond=0)
    return [
        SimpleNamespace(
            actor="", action="seed.event", target_type="", target_id="", chat_id=None, outcome="success",
            request_id="", ip=None, user_agent="", details=chain.canonical_details(AWKWARD_DETAILS[0]),
            key_id=signing_key().key_id if keyed else "", ts=ts,
        ),
        *(
            SimpleNamespace(
                actor="оператор 😀", action="chat.rename", target_type="chat", target_id="12",
                chat_id=2**53 + 1, outcome="denied", request_id="req-ü", ip=_storable_ip(ip),
                user_agent='Mozilla/5.0 "quoted" \\', details=chain.canonical_details(details),
                key_id=signing_key().key_id if keyed else "", ts=ts.replace(microsecond=index * 1001),
            )
            for index, (ip, details) in enumerate(
                zip(IPS, AWKWARD_DETAILS, strict=True)
            )
        ),
    ]  # fmt: skip


def store(events: list[SimpleNamespace]) -> None:
    """Chain and insert ``events`` as the live code would, each hashed by ``event_hash``."""
    head = chain.chain_head_from_events()
    for offset, event in enumerate(events):
        event.id = head.event_id + 1 + offset
        event.prev_hash = head.hash if offset == 0 else events[offset - 1].hash
        event.hash = event_hash(event)
        AuditEvent(**vars(event)).save(force_insert=True)
    chain.AuditChainHead.objects.update_or_create(
        pk=chain.HEAD_PK,
        defaults={"last_event_id": events[-1].id, "last_hash": events[-1].hash, "last_ts": events[-1].ts},
    )


def row_links() -> dict[int, tuple[str, str]]:
    """Each stored event's link as the row path computes it, and the stored hash."""
    links = {}
    for rows in chain._rows_after(0, upto=10**9, chunk_size=4):
        for row in rows:
            key = chain_key(row[12]) if row[12] else None
            encoded = link_encoding(
                row[0], chain._row_ts(row[1]), *row[2:11], details_encoding(row[11]), row[12], row[13]
            )
            links[row[0]] = (link_signer(key.secret if key else None)(encoded), row[14])
    return links


def test_the_row_path_gives_event_hash_s_links_for_awkward_values_unkeyed_and_keyed(db):
    store(awkward_events(keyed=False))  # version 1, plain SHA-256, written before the chain had a key
    store(awkward_events(keyed=True))  # version 2, HMAC under the chain key
    stored = {event.id: event for event in AuditEvent.objects.order_by("id")}
    links = row_links()
    assert sorted(links) == sorted(stored) == list(range(1, 15))
    for event_id, (link, stored_hash) in links.items():
        # The old per-model path, on the instance read back from the database.
        assert link == stored_hash == event_hash(stored[event_id]), event_id
    assert {bool(event.key_id) for event in stored.values()} == {False, True}
    report = chain_verify(chunk_size=3)
    assert report.ok, report.broken
    assert report.checked == 14


def test_events_recorded_by_the_live_path_verify_on_the_row_path(db):
    for index, details in enumerate(AWKWARD_DETAILS):
        audit_record(
            actor="alice", action=AuditAction.CHAT_RENAME, target_id=index, chat_id=index or None, details=details
        )
    assert AuditEvent.objects.count() == len(AWKWARD_DETAILS)
    assert chain_verify(chunk_size=2).ok


def test_link_encoding_is_event_hash_s_document_byte_for_byte():
    for keyed in (False, True):
        for event in awkward_events(keyed=keyed):
            event.id, event.prev_hash = 41, "f" * 64
            document = {
                "v": 2 if keyed else 1, "id": event.id, "ts": format_ts(event.ts), "actor": event.actor,
                "action": event.action, "target_type": event.target_type, "target_id": event.target_id,
                "chat_id": event.chat_id, "outcome": event.outcome, "request_id": event.request_id, "ip": event.ip,
                "user_agent": event.user_agent, "details": event.details, "prev_hash": event.prev_hash,
                **({"kid": event.key_id} if keyed else {}),
            }  # fmt: skip
            expected = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            encoded = link_encoding(
                event.id, format_ts(event.ts), event.actor, event.action, event.target_type, event.target_id,
                event.chat_id, event.outcome, event.request_id, event.ip, event.user_agent,
                details_encoding(json.dumps(event.details)), event.key_id, event.prev_hash,
            )  # fmt: skip
            assert encoded == expected
            key = chain_key(event.key_id) if keyed else None
            assert link_signer(key.secret if key else None)(encoded) == event_hash(event)


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ("{}", "{}"),
        ('{"b": 2.0, "a": [1e16, 0.5]}', '{"a":[10000000000000000,0.5],"b":2}'),
        ('{"t": "\\u0416\\u00e9"}', '{"t":"Жé"}'),
        ('{"n": -0.0, "x": 1E+2}', '{"n":0,"x":100}'),
    ],
)
def test_details_are_encoded_from_their_stored_text_as_canonical_details_would(stored, expected):
    assert details_encoding(stored) == expected
    value = chain.canonical_details(json.loads(stored))
    assert json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False) == expected


def test_details_that_no_database_stores_are_refused():
    with pytest.raises(ValueError, match="Out of range float values"):
        details_encoding('{"x": 1e400}')


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ("2024-02-29 23:59:59.000001", "2024-02-29T23:59:59.000001Z"),
        ("2024-02-29 23:59:59", "2024-02-29T23:59:59.000000Z"),
        ("2024-02-29T23:59:59.5+02:00", "2024-02-29T21:59:59.500000Z"),
    ],
)
def test_sqlite_timestamps_are_encoded_as_format_ts_would(stored, expected):
    assert ts_encoding(stored) == expected


def test_chain_verify_reports_progress_after_every_chunk(db):
    seed_events([timezone.now()] * 20)
    calls: list[tuple[int, int]] = []
    report = chain_verify(chunk_size=7, on_progress=lambda checked, about: calls.append((checked, about)))
    assert report.ok
    assert calls == [(7, 20), (14, 20), (20, 20)]


def test_progress_stops_at_the_break(db):
    seed_events([timezone.now()] * 20)
    calls: list[tuple[int, int]] = []
    chain.AuditChainHead.objects.update(last_event_id=25)
    report = chain_verify(chunk_size=7, on_progress=lambda checked, about: calls.append((checked, about)))
    assert report.broken is not None
    assert report.broken.kind == "truncated"
    assert calls == [(7, 25), (14, 25), (20, 25)]


def verify_audit(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("verify_audit", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


SUMMARY = re.compile(
    r"Audit chain OK: 30 events, #1\.\.#30, from genesis, in \d+\.\d s \([\d,]+ events/s\)\.\n", re.ASCII
)
PROGRESS = re.compile(r"verified ([\d,]+) of about 30 events \([\d,]+/s\)")


def test_verify_audit_shows_progress_on_stderr_and_the_rate_in_its_summary(db, monkeypatch):
    monkeypatch.setattr("audit.management.commands.verify_audit.PROGRESS_EVERY_SECONDS", 0)
    seed_events([timezone.now()] * 30)
    out, err = verify_audit("--chunk-size", "10")
    assert SUMMARY.fullmatch(out), out
    assert [match[1] for match in PROGRESS.finditer(err)] == ["10", "20", "30"], err
    assert len(err.splitlines()) == 3


def test_verify_audit_is_quiet_at_verbosity_0_but_for_its_summary(db, monkeypatch):
    monkeypatch.setattr("audit.management.commands.verify_audit.PROGRESS_EVERY_SECONDS", 0)
    seed_events([timezone.now()] * 30)
    out, err = verify_audit("--chunk-size", "10", "--verbosity", "0")
    assert SUMMARY.fullmatch(out), out
    assert err == ""


def test_verify_audit_shows_no_progress_within_the_first_second(db):
    seed_events([timezone.now()] * 30)
    out, err = verify_audit("--chunk-size", "10")
    assert SUMMARY.fullmatch(out), out
    assert err == ""


def test_an_edit_is_found_in_a_later_chunk_while_the_next_is_read_ahead(db):
    seed_events([timezone.now()] * 20)
    with as_intruder():
        AuditEvent.objects.filter(id=12).update(target_id="forged")
    report = chain_verify(chunk_size=3)
    assert report.broken is not None
    assert (report.broken.kind, report.broken.event_id, report.checked) == ("edited", 12, 11)


def test_a_stored_timestamp_that_is_not_one_is_an_edit_not_a_crash(db):
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL stores only timestamps in a timestamptz column")
    seed_events([timezone.now()] * 5)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditevent SET ts = 'yesterday' WHERE id = 3")
    report = chain_verify()
    assert report.broken is not None
    assert (report.broken.kind, report.broken.event_id) == ("edited", 3)
