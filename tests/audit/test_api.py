"""GET /api/audit: only the audit key opens it, filters and cursors behave, every read is
audited, and a reader polling forward misses nothing."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import timedelta, timezone

import pytest
import requests
from django.contrib.auth.models import User
from django.db import connection, connections, transaction
from django.test import Client

from audit.chain import format_ts
from audit.keys import key_fingerprint
from audit.models import AuditEvent
from audit.services import audit_record
from tests.audit.helpers import events, only_event
from tests.personas import make_persona
from tests.waiting import wait_until

OLD_KEY = "audit-key-old-" + "o" * 32
NEW_KEY = "audit-key-new-" + "n" * 32
EVENT_FIELDS = {
    "id", "ts", "actor", "action", "target_type", "target_id", "chat_id", "outcome", "request_id", "ip", "details",
}  # fmt: skip


@pytest.fixture
def audit_keys(settings):
    settings.SOFIIA_AUDIT_KEYS = [OLD_KEY, NEW_KEY]
    return settings.SOFIIA_AUDIT_KEYS


def read(client, *, key=NEW_KEY, status=200, **params):
    response = client.get("/api/audit", params, HTTP_X_AUDIT_KEY=key)
    assert response.status_code == status, response.content
    return response.json()


@pytest.fixture
def activity(alice, bob):
    """Chats and sends by two operators, through the API."""
    chats = {"alice": alice.new_chat(title="a"), "bob": bob.new_chat(title="b")}
    for persona in (alice, bob):
        chat_id = chats[persona.username]["id"]
        for i in range(2):
            assert persona.send(chat_id, f"{persona.username}-{i}", key=uuid.uuid4().hex).status_code == 201
    return chats


def _no_secret_stored(secret: str) -> None:
    for event in AuditEvent.objects.all():
        assert secret not in repr(event.__dict__), event


# --- Who gets in ----------------------------------------------------------------------


def _refused_requests(alice_token: str, superuser: User):
    session = Client()
    session.force_login(superuser)
    return {
        "no key": lambda c: c.get("/api/audit"),
        "a wrong key": lambda c: c.get("/api/audit", HTTP_X_AUDIT_KEY="not-the-key"),
        "an empty key": lambda c: c.get("/api/audit", HTTP_X_AUDIT_KEY=""),
        "a blank key": lambda c: c.get("/api/audit", HTTP_X_AUDIT_KEY="   "),
        "a prefix of the key": lambda c: c.get("/api/audit", HTTP_X_AUDIT_KEY=NEW_KEY[:-1]),
        "the key and more": lambda c: c.get("/api/audit", HTTP_X_AUDIT_KEY=NEW_KEY + "x"),
        "the key in other case": lambda c: c.get("/api/audit", HTTP_X_AUDIT_KEY=NEW_KEY.upper()),
        "the key in the query string": lambda c: c.get(f"/api/audit?X-Audit-Key={NEW_KEY}"),
        "the key as ?key=": lambda c: c.get(f"/api/audit?key={NEW_KEY}"),
        "the key as ?audit_key=": lambda c: c.get(f"/api/audit?audit_key={NEW_KEY}"),
        "the key as a bearer token": lambda c: c.get("/api/audit", HTTP_AUTHORIZATION=f"Bearer {NEW_KEY}"),
        "the key as a cookie": lambda c: (c.cookies.load({"X-Audit-Key": NEW_KEY}), c.get("/api/audit"))[1],
        "loopback with X-Forwarded-For and Host localhost": lambda c: c.get(
            "/api/audit", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="127.0.0.1", HTTP_HOST="localhost"
        ),
        "loopback with a wrong key": lambda c: c.get(
            "/api/audit",
            REMOTE_ADDR="127.0.0.1",
            HTTP_X_FORWARDED_FOR="127.0.0.1",
            HTTP_HOST="localhost",
            HTTP_X_AUDIT_KEY="wrong",
        ),
        "an operator's bearer token": lambda c: c.get("/api/audit", HTTP_AUTHORIZATION=f"Bearer {alice_token}"),
        "a superuser's session": lambda c: session.get("/api/audit"),
    }


REFUSALS = [
    "no key", "a wrong key", "an empty key", "a blank key", "a prefix of the key", "the key and more",
    "the key in other case", "the key in the query string", "the key as ?key=", "the key as ?audit_key=",
    "the key as a bearer token", "the key as a cookie", "loopback with X-Forwarded-For and Host localhost",
    "loopback with a wrong key", "an operator's bearer token", "a superuser's session",
]  # fmt: skip


@pytest.mark.parametrize("case", REFUSALS)
def test_the_audit_api_refuses_anything_but_a_valid_key(case, alice, audit_keys, client):
    superuser = User.objects.create_superuser("root", password="root-pass-123")
    response = _refused_requests(alice.token, superuser)[case](client)
    assert response.status_code == 401, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] in ("audit_key_required", "audit_key_invalid")
    assert "items" not in body
    assert response["WWW-Authenticate"].startswith("X-Audit-Key")
    denied = only_event(action="audit.read")
    assert (denied.actor, denied.outcome, denied.details["reason"]) == ("anonymous", "denied", body["error"])
    _no_secret_stored(NEW_KEY)


def test_debug_mode_opens_nothing(db, settings, client):
    settings.DEBUG = True
    settings.SOFIIA_AUDIT_KEYS = [NEW_KEY]
    assert client.get("/api/audit", REMOTE_ADDR="127.0.0.1").status_code == 401


@pytest.mark.parametrize("key", ["", "anything"])
def test_without_configured_keys_everyone_is_refused(db, settings, client, key):
    settings.SOFIIA_AUDIT_KEYS = []
    response = client.get("/api/audit", HTTP_X_AUDIT_KEY=key)
    assert response.status_code == 401
    assert response.json()["error"] == ("audit_key_required" if not key else "audit_key_invalid")


@pytest.mark.parametrize("key", [OLD_KEY, NEW_KEY])
def test_each_configured_key_opens_the_trail(key, audit_keys, alice, client):
    body = read(client, key=key)
    assert set(body) == {"items", "next_cursor"}
    assert [e["action"] for e in body["items"]] == ["token.create", "operator.create"]
    event = only_event(action="audit.read")
    assert event.actor == f"audit-key:{key_fingerprint(key)}"
    assert event.details["key"] == key_fingerprint(key)
    assert (event.outcome, event.details["via"], event.details["returned"]) == ("success", "api", 2)
    assert key_fingerprint(OLD_KEY) != key_fingerprint(NEW_KEY)
    _no_secret_stored(key)


def test_an_operator_token_neither_opens_nor_closes_the_trail(audit_keys, alice):
    response = alice.api.get("/api/audit", HTTP_X_AUDIT_KEY=NEW_KEY)
    assert response.status_code == 200
    assert alice.api.get("/api/audit").status_code == 401


def test_a_read_is_audited_with_its_filters_and_request_id(audit_keys, activity, client, behind_proxy):
    response = client.get(
        "/api/audit", {"action": "chat.create", "limit": "1"}, HTTP_X_AUDIT_KEY=OLD_KEY, HTTP_X_REQUEST_ID="siem-7"
    )
    assert response.status_code == 200
    event = only_event(action="audit.read")
    assert event.request_id == "siem-7"
    assert event.details["filters"] == {"action": "chat.create"}
    assert (event.details["order"], event.details["limit"], event.details["cursor"]) == ("desc", 1, False)


def test_other_methods_are_refused(db, audit_keys, client):
    assert client.post("/api/audit", {}, HTTP_X_AUDIT_KEY=NEW_KEY).status_code == 405
    assert client.delete("/api/audit", HTTP_X_AUDIT_KEY=NEW_KEY).status_code == 405
    # A method the URL does not take is refused before any key is looked at
    # (sofiia.lib.methods): not an attempt to read, so nothing to record.
    refused = client.post("/api/audit", {})
    assert (refused.status_code, refused["Allow"]) == (405, "GET, HEAD, OPTIONS")
    assert not AuditEvent.objects.filter(action="audit.read").exists()


# --- What it returns ------------------------------------------------------------------


def test_events_have_the_contract_shape(audit_keys, alice, client):
    chat = alice.new_chat(title="shape")
    item = read(client, action="chat.create")["items"][0]
    assert set(item) == EVENT_FIELDS
    stored = AuditEvent.objects.get(id=item["id"])
    assert item == {
        "id": stored.id,
        "ts": format_ts(stored.ts),
        "actor": "alice",
        "action": "chat.create",
        "target_type": "chat",
        "target_id": str(chat["id"]),
        "chat_id": chat["id"],
        "outcome": "success",
        "request_id": stored.request_id,
        "ip": "127.0.0.1",
        "details": {"title": "shape", "agent": "echo", "node": "NODA1"},
    }
    assert len(item["ts"]) == len("2026-01-01T00:00:00.000000Z")


def test_the_trail_is_newest_first_unless_asked_otherwise(audit_keys, activity, client):
    newest_first = [e["id"] for e in read(client, action="message.send")["items"]]
    oldest_first = [e["id"] for e in read(client, action="message.send", order="asc")["items"]]
    assert newest_first == sorted(newest_first, reverse=True)
    assert oldest_first == list(reversed(newest_first))
    assert len(oldest_first) == 4


def test_filters_select_by_action_actor_and_chat(audit_keys, activity, client):
    bob_chat = activity["bob"]["id"]
    assert {e["action"] for e in read(client, action="chat.create")["items"]} == {"chat.create"}
    by_bob = read(client, actor="bob")["items"]
    assert {e["actor"] for e in by_bob} == {"bob"}
    assert sorted(e["action"] for e in by_bob) == ["chat.create", "message.send", "message.send"]
    in_chat = read(client, chat_id=bob_chat)["items"]
    assert {e["chat_id"] for e in in_chat} == {bob_chat}
    assert len(in_chat) == 3
    both = read(client, actor="alice", action="message.send", chat_id=activity["alice"]["id"])["items"]
    assert len(both) == 2
    assert read(client, actor="nobody")["items"] == []


def test_since_is_inclusive_and_until_exclusive(audit_keys, activity, client):
    sends = events(action="message.send")
    middle = sends[1]
    since = read(client, action="message.send", since=format_ts(middle.ts), order="asc")["items"]
    assert [e["id"] for e in since] == [e.id for e in sends[1:]]
    until = read(client, action="message.send", until=format_ts(middle.ts), order="asc")["items"]
    assert [e["id"] for e in until] == [sends[0].id]
    with_offset = middle.ts.astimezone(timezone(timedelta(hours=2))).isoformat()
    assert with_offset.endswith("+02:00")
    assert read(client, action="message.send", since=with_offset)["items"][-1]["id"] == middle.id


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_pages_walk_every_event_once(audit_keys, activity, alice, client, order):
    for i in range(3):
        alice.new_chat(title=f"more {i}")
    expected = list(AuditEvent.objects.filter(actor="alice").order_by("ts", "id").values_list("id", flat=True))
    if order == "desc":
        expected.reverse()
    seen, cursor = [], None
    while True:
        page = read(client, actor="alice", order=order, limit=2, **({"cursor": cursor} if cursor else {}))
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if not page["items"] or cursor is None:
            break
    assert seen == expected
    assert len(seen) == 6


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("chat_id=abc", "invalid_input"),
        ("chat_id=0", "invalid_input"),
        ("chat_id=-3", "invalid_input"),
        ("chat_id=99999999999999999999", "invalid_input"),
        ("since=yesterday", "invalid_input"),
        ("since=2026-13-01T00:00:00Z", "invalid_input"),
        ("until=2026-01-01T25:00:00Z", "invalid_input"),
        ("since=2026-01-01T00:00:00 00:00", "invalid_input"),
        ("since=9999-12-31T23:59:59-05:00", "invalid_input"),
        ("since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", "invalid_input"),
        ("order=up", "invalid_input"),
        ("action=" + "a" * 65, "invalid_input"),
        ("actor=" + "a" * 151, "invalid_input"),
        ("action=chat.create&action=message.send", "invalid_input"),
        ("limit=0", "invalid_limit"),
        ("limit=201", "invalid_limit"),
        ("limit=ten", "invalid_limit"),
        ("cursor=garbage", "invalid_cursor"),
    ],
)
def test_bad_parameters_are_a_400_naming_the_problem(audit_keys, client, db, query, code):
    response = client.get(f"/api/audit?{query}", HTTP_X_AUDIT_KEY=NEW_KEY)
    assert response.status_code == 400, response.content
    assert response.json()["error"] == code


def test_an_empty_filter_is_no_filter(audit_keys, activity, client):
    assert len(read(client, action="", actor="", chat_id="")["items"]) == len(read(client)["items"]) - 1


def test_a_cursor_only_works_with_the_filters_and_order_it_came_from(audit_keys, activity, client):
    cursor = read(client, action="message.send", limit=1)["next_cursor"]
    assert cursor
    assert read(client, action="message.send", limit=1, cursor=cursor)["items"]
    for other in (
        {"action": "chat.create"},
        {},
        {"action": "message.send", "actor": "alice"},
        {"action": "message.send", "order": "asc"},
    ):
        response = client.get("/api/audit", {**other, "cursor": cursor}, HTTP_X_AUDIT_KEY=NEW_KEY)
        assert response.status_code == 400, other
        assert response.json()["error"] == "invalid_cursor"


# --- Polling forward ------------------------------------------------------------------


def _poll(client, cursor, *, limit=50):
    params = {"order": "asc", "limit": limit, **({"cursor": cursor} if cursor else {})}
    page = read(client, **params)
    return page["items"], page["next_cursor"]


def test_the_last_ascending_page_keeps_a_cursor_for_polling(audit_keys, alice, client):
    items, cursor = _poll(client, None)
    assert [e["action"] for e in items] == ["operator.create", "token.create"]
    assert cursor is not None
    alice.new_chat()
    items, cursor = _poll(client, cursor)
    # The read before is an event too, and so is each poll.
    assert [e["action"] for e in items] == ["audit.read", "chat.create"]
    items, _ = _poll(client, cursor)
    assert [e["action"] for e in items] == ["audit.read"]


@pytest.fixture
def waiting_for_the_chain(monkeypatch) -> Callable[[], int]:
    """How many database sessions wait for a lock another transaction holds (the chain head's
    row lock on PostgreSQL, the write lock on SQLite): ``waiting_for_the_chain()``."""
    if connection.vendor == "postgresql":

        def sessions_waiting() -> int:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                return int(cursor.fetchone()[0])

        return sessions_waiting
    # On SQLite a writer finding the lock held is told "busy" and retries: note who was.
    from sofiia.db.sqlite3 import base

    refused: set[int] = set()
    is_busy = base._is_busy

    def noting_who_is_refused(exc: Exception) -> bool:
        if busy := is_busy(exc):
            refused.add(threading.get_ident())
        return busy

    monkeypatch.setattr(base, "_is_busy", noting_who_is_refused)
    return lambda: len(refused)


def test_an_event_that_commits_late_is_not_skipped_by_a_forward_poll(
    transactional_db, audit_keys, client, waiting_for_the_chain
):
    audit_record(actor="system", action="test.start")
    seen, cursor = _poll(client, None)
    holding, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def slow_writer() -> None:
        # Records its event, then keeps its transaction open until the others queue behind it.
        try:
            with transaction.atomic():
                audit_record(actor="slow", action="test.slow")
                holding.set()
                release.wait(30)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    def releaser() -> None:
        # The quick writer and this test's own poll (its read is an event too) both wait.
        try:
            wait_until(lambda: waiting_for_the_chain() >= 2, 20, what="the quick writer and the poll to wait")
        except BaseException as exc:
            errors.append(exc)
        finally:
            release.set()
            connections.close_all()

    def quick_writer() -> None:
        try:
            holding.wait(10)
            audit_record(actor="quick", action="test.quick")
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=f) for f in (slow_writer, quick_writer, releaser)]
    for thread in threads:
        thread.start()
    assert holding.wait(10)
    while any(thread.is_alive() for thread in threads):
        items, cursor = _poll(client, cursor)
        seen += items
    for thread in threads:
        thread.join()
    items, cursor = _poll(client, cursor)
    seen += items
    assert errors == []
    written = list(AuditEvent.objects.filter(id__lte=seen[-1]["id"]).order_by("id").values_list("id", flat=True))
    assert [e["id"] for e in seen] == written, "a poll skipped or repeated an event"
    slow, quick = only_event(action="test.slow"), only_event(action="test.quick")
    assert (slow.ts, slow.id) < (quick.ts, quick.id)


@pytest.mark.live
def test_forward_polling_misses_nothing_under_concurrent_writers(live_console, settings):
    settings.SOFIIA_AUDIT_KEYS = [NEW_KEY]
    operators = [make_persona(name) for name in ("alice", "bob", "carol")]
    console = live_console(workers=3)
    headers = {"X-Audit-Key": NEW_KEY}
    done = threading.Event()
    seen: list[dict] = []
    failures: list[str] = []

    def poll_once(cursor):
        params = {"order": "asc", "limit": 7, **({"cursor": cursor} if cursor else {})}
        response = requests.get(f"{console.base}/api/audit", params=params, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        body = response.json()
        seen.extend(body["items"])
        return body["next_cursor"], len(body["items"])

    def poller() -> None:
        try:
            cursor = None
            while not done.is_set():
                cursor, _ = poll_once(cursor)
                done.wait(0.02)  # a poller's pause between reads, cut short when the writers are done
            while True:  # drain: the writers are done, read up to the end
                cursor, count = poll_once(cursor)
                if count <= 1:  # only this poller's own previous read is new
                    return
        except BaseException as exc:
            failures.append(repr(exc))

    def operate(persona) -> None:
        http = console.session(persona.token)
        chat = http.post(f"{console.base}/api/chats", json={"title": "p", "agent": "echo"}, timeout=30).json()
        for i in range(10):
            response = http.post(
                f"{console.base}/api/chats/{chat['id']}/send",
                json={"text": f"{i}"},
                headers={"Idempotency-Key": uuid.uuid4().hex},
                timeout=30,
            )
            if response.status_code != 201:
                failures.append(response.text)

    reader = threading.Thread(target=poller)
    reader.start()
    writers = [threading.Thread(target=operate, args=(persona,)) for persona in operators]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    done.set()
    reader.join(60)
    assert failures == []
    ids = [e["id"] for e in seen]
    assert len(ids) == len(set(ids)), "an event was read twice"
    expected = list(AuditEvent.objects.filter(id__lte=ids[-1]).order_by("id").values_list("id", flat=True))
    assert ids == expected, "a forward poll skipped an event"
    assert sum(e["action"] == "message.send" for e in seen) == 30


def test_a_flood_of_refused_reads_is_answered_but_recorded_within_a_budget(db, audit_keys, client):
    from audit.services import REPEATS_RECORDED_PER_MINUTE
    from tests.test_metrics import sample

    metric = "sofiia_audit_unrecorded_total"
    before = sample(client.get("/metrics").content.decode(), metric, action="audit.read")
    statuses = [
        client.get("/api/audit", HTTP_X_AUDIT_KEY="wrong").status_code for _ in range(REPEATS_RECORDED_PER_MINUTE + 5)
    ]
    assert set(statuses) == {401}
    denied = AuditEvent.objects.filter(action="audit.read", outcome="denied")
    assert denied.count() == REPEATS_RECORDED_PER_MINUTE
    after = sample(client.get("/metrics").content.decode(), metric, action="audit.read")
    assert after - before == 5
    # Another address has a budget of its own.
    assert client.get("/api/audit", REMOTE_ADDR="198.51.100.7").status_code == 401
    assert denied.filter(ip="198.51.100.7").count() == 1
