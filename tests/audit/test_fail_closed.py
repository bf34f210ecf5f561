"""The audit trail never fails open: an action commits only with its event, no content can
make an event unwritable, a read of the trail is served only once it is recorded, and reads
are limited instead of going unrecorded."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from audit.chain import chain_verify
from audit.content import MAX_DETAILS_CHARS, MAX_QUERY_CHARS
from audit.models import AuditChainHead, AuditEvent
from audit.services import audit_record
from chats.models import Chat
from sofiia.lib.env import parse_rate
from tests.audit.helpers import as_intruder, events, only_event, sql
from tests.test_metrics import sample

KEY = "k" * 40
CHANGELIST = "/admin/audit/auditevent/"
EXPORT = "/admin/audit/auditevent/export.csv"


@pytest.fixture
def audit_key(settings, db):
    settings.SOFIIA_AUDIT_KEYS = [KEY]
    return KEY


def head_moved_back() -> None:
    """Make the next append collide with the last event, as a head someone moved back would:
    a write that fails for a reason other than an outage."""
    for n in range(2):
        audit_record(actor="system", action="test.before", details={"n": n})
    last = AuditEvent.objects.order_by("-id").first()
    before = AuditEvent.objects.get(id=last.id - 1)
    with as_intruder():
        AuditChainHead.objects.update(last_event_id=before.id, last_hash=before.hash, last_ts=before.ts)


# --- An action commits if and only if its event does -----------------------------------


def test_a_chat_is_not_created_when_the_audit_table_is_away(alice, client):
    before = sample(client.get("/metrics").content.decode(), "sofiia_audit_write_failures_total", action="chat.create")
    sql("ALTER TABLE audit_auditevent RENAME TO audit_auditevent_away")
    try:
        response = alice.api.post("/api/chats", {"title": "unaudited", "agent": "echo"}, format="json")
    finally:
        sql("ALTER TABLE audit_auditevent_away RENAME TO audit_auditevent")
    assert response.status_code == 503, response.content
    # SQLite reports a missing table as an OperationalError (an outage), PostgreSQL as a
    # ProgrammingError: refused either way, with the code that says which.
    expected = "database_unavailable" if connection.vendor == "sqlite" else "audit_unavailable"
    assert response.json()["error"] == expected
    assert not Chat.objects.filter(title="unaudited").exists()
    after = sample(client.get("/metrics").content.decode(), "sofiia_audit_write_failures_total", action="chat.create")
    assert after - before == 1
    # The chain carries on with the next action, which is recorded with it.
    chat = alice.new_chat(title="audited")
    assert only_event(action="chat.create").chat_id == chat["id"]
    assert chain_verify().ok


def test_an_audit_write_that_fails_otherwise_refuses_the_action_with_audit_unavailable(alice):
    head_moved_back()
    response = alice.api.post("/api/chats", {"title": "unaudited", "agent": "echo"}, format="json")
    assert response.status_code == 503, response.content
    assert response.json()["error"] == "audit_unavailable"
    assert response["Retry-After"]
    assert not Chat.objects.filter(title="unaudited").exists()
    assert not events(action="chat.create")


def test_audit_record_raises_instead_of_returning_nothing(db):
    head_moved_back()
    from audit.services import AuditUnavailable

    with pytest.raises(AuditUnavailable):
        audit_record(actor="system", action="test.event")


# --- Content can never make an event unwritable ------------------------------------------


def _nested(depth: int) -> dict:
    value: dict = {"leaf": True}
    for _ in range(depth):
        value = {"inner": value}
    return value


CONTENT = {
    "NUL": {"model": "gpt\x00-4"},
    "a lone surrogate": {"model": "\ud800x"},
    "3 MB": {"model": "m" * 3_000_000},
    "10,000 levels deep": {"nested": _nested(10_000)},
    "100,000 entries": {"many": {f"k{i}": i for i in range(100_000)}},
    "a NUL in a key": {"bad\x00key": 1},
    "not JSON": {"x": float("nan"), "y": float("inf"), "z": {1, 2}, "w": object()},
}


@pytest.mark.parametrize("details", CONTENT.values(), ids=CONTENT.keys())
def test_any_details_are_written_bounded_and_verify(db, details):
    event = audit_record(actor="system", action="test.content", details=details)
    stored = AuditEvent.objects.get(id=event.id)
    assert stored.hash == event.hash
    assert len(json.dumps(stored.details, ensure_ascii=False)) <= MAX_DETAILS_CHARS + 100
    assert chain_verify().ok


def test_nul_and_lone_surrogates_stay_visible_as_escapes(db):
    event = audit_record(actor="ev\x00e", action="test.content", details={"a": "gpt\x00-4", "b": "\ud800x"})
    stored = AuditEvent.objects.get(id=event.id)
    assert stored.actor == "ev\\u0000e"
    assert stored.details == {"a": "gpt\\u0000-4", "b": "\\ud800x"}


def test_a_long_value_is_cut_with_its_original_length(db):
    event = audit_record(actor="a" * 10_000, action="test.content", details={"model": "m" * 3_000_000})
    stored = AuditEvent.objects.get(id=event.id)
    assert len(stored.actor) == 150
    model = stored.details["model"]
    assert model.startswith("mmm")
    assert model.endswith("[cut: 3,000,000 chars]")
    assert len(model) == 1000


def test_a_user_agent_with_nul_is_recorded_escaped_with_the_action(alice):
    response = alice.api.post(
        "/api/chats", {"title": "t", "agent": "echo"}, format="json", HTTP_USER_AGENT="probe\x00" + "u" * 5000
    )
    assert response.status_code == 201, response.content
    event = only_event(action="chat.create")
    assert event.user_agent.startswith("probe\\u0000uuu")
    assert len(event.user_agent) == 512
    assert chain_verify().ok


# --- /api/audit: served only once recorded, and limited -----------------------------------


def test_every_served_read_is_recorded(audit_key, client):
    for _ in range(5):
        assert client.get("/api/audit", HTTP_X_AUDIT_KEY=audit_key).status_code == 200
    assert len(events(action="audit.read", outcome="success")) == 5


def test_a_read_that_cannot_be_recorded_is_not_served(audit_key, alice, client):
    head_moved_back()
    response = client.get("/api/audit", HTTP_X_AUDIT_KEY=audit_key)
    assert response.status_code == 503
    body = response.json()
    assert body["error"] == "audit_unavailable"
    assert "items" not in body


def test_reads_past_the_default_limit_are_refused_with_429(audit_key, client):
    statuses = [client.get("/api/audit", HTTP_X_AUDIT_KEY=audit_key).status_code for _ in range(62)]
    assert statuses == [200] * 60 + [429] * 2
    refused = client.get("/api/audit", HTTP_X_AUDIT_KEY=audit_key)
    assert refused.status_code == 429
    body = refused.json()
    assert (body["error"], body["scope"]) == ("rate_limited", "audit_read")
    assert 1 <= body["retry_after"] <= 60
    assert refused["Retry-After"] == str(body["retry_after"])
    # Each read served is one event; the refusals are recorded too (within their budget).
    assert len(events(action="audit.read", outcome="success")) == 60
    denied = events(action="audit.read", outcome="denied")
    assert len(denied) == 3
    assert denied[0].details["reason"] == "rate_limited"


def test_reads_are_limited_per_client_address_across_keys(db, settings, client):
    settings.SOFIIA_AUDIT_KEYS = ["a" * 40, "b" * 40]
    settings.SOFIIA_RATE_LIMIT_AUDIT_READ = parse_rate("SOFIIA_RATE_LIMIT_AUDIT_READ", "3/60")
    statuses = [client.get("/api/audit", HTTP_X_AUDIT_KEY=key).status_code for key in ["a" * 40, "b" * 40] * 2]
    assert statuses == [200, 200, 200, 429]
    blocked = only_event(action="audit.read", outcome="denied")
    assert blocked.details["per"] == "address"
    # Another address still reads with the same key.
    assert client.get("/api/audit", HTTP_X_AUDIT_KEY="b" * 40, REMOTE_ADDR="198.51.100.9").status_code == 200


def test_a_huge_query_string_is_refused_not_recorded_whole(audit_key, client):
    response = client.get("/api/audit", {"actor": "x" * 7800}, HTTP_X_AUDIT_KEY=audit_key)
    assert response.status_code == 400
    assert all(len(json.dumps(e.details)) < 2000 for e in events())


# --- The admin: served only once recorded, limited, and NUL is a 400 -----------------------


@pytest.mark.parametrize(
    "path",
    [
        f"{CHANGELIST}?q=%00",
        f"{CHANGELIST}?actor=a%00b",
        f"{CHANGELIST}?action=%00",
        f"{EXPORT}?o=%00",
        f"{EXPORT}?q=%00",
    ],
)
def test_nul_in_the_admins_search_or_filters_is_a_400_and_nothing_is_served(auditor, path):
    response = auditor.admin.get(path)
    assert response.status_code == 400
    assert not getattr(response, "streaming", False)
    assert not events(action="audit.read")


def test_an_export_with_a_junk_order_is_recorded_before_it_is_served(auditor):
    response = auditor.admin.get(f"{EXPORT}?o=zz")
    assert response.status_code == 200
    assert response.streaming
    read = only_event(action="audit.read")
    assert (read.details["view"], read.details["query"]) == ("export", {"o": ["zz"]})


def test_an_export_that_cannot_be_recorded_is_not_served(auditor):
    head_moved_back()
    response = auditor.admin.get(EXPORT)
    assert response.status_code == 503
    assert not getattr(response, "streaming", False)
    assert b"could not be recorded" in response.content


def test_the_admins_record_of_a_huge_query_is_a_bounded_copy(auditor):
    assert auditor.admin.get(CHANGELIST, {"q": "x" * 7800, "o": "y" * 5000}).status_code == 200
    read = only_event(action="audit.read")
    kept = read.details["query"]
    assert sum(len(k) + sum(len(v) for v in values) for k, values in kept.items()) <= MAX_QUERY_CHARS
    assert kept["q"][0].endswith("[cut: 7,800 chars]")
    assert len(json.dumps(read.details)) < 2 * MAX_QUERY_CHARS


def test_admin_reads_past_the_limit_get_a_429_page(auditor, settings):
    settings.SOFIIA_RATE_LIMIT_AUDIT_READ = parse_rate("SOFIIA_RATE_LIMIT_AUDIT_READ", "2/60")
    assert [auditor.admin.get(CHANGELIST).status_code for _ in range(2)] == [200, 200]
    refused = auditor.admin.get(EXPORT)
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert b"Too many reads" in refused.content
    assert len(events(action="audit.read", outcome="success")) == 2
    assert only_event(action="audit.read", outcome="denied").details["reason"] == "rate_limited"
