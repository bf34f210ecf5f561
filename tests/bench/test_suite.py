"""The benchmark suite's own logic: its verdicts, its table, and its yardstick endpoints."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client

from audit.models import AuditEvent
from bench.suite import TABLE_END, TABLE_START, TARGETS, Target, evaluate, gate_failures, render_table, rewrite_doc
from chats.models import Chat, Message


def _target(bound: float, at_least: bool) -> Target:
    return Target(0, "m", bound, at_least, "×", lambda r: None)


@pytest.mark.parametrize(
    ("bound", "at_least", "value", "verdict"),
    [
        (0.7, True, 0.7, "met"),
        (0.7, True, 0.62, "within noise"),
        (0.7, True, 0.59, "not met"),
        (1.4, False, 1.4, "met"),
        (1.4, False, 1.55, "within noise"),
        (1.4, False, 1.7, "not met"),
    ],
)
def test_a_target_is_a_failed_gate_only_beyond_the_noise_margin(bound, at_least, value, verdict):
    assert _target(bound, at_least).verdict(value) == verdict


def test_the_table_has_a_row_per_measure_and_a_column_per_configuration():
    results = {
        "sqlite": {"send_stack": {"throughput_ratio": {"median": 0.8, "min": 0.75, "max": 0.9}}},
        "postgres": {
            "send_stack": {"throughput_ratio": {"median": 0.5, "min": 0.45, "max": 0.55}},
            "audit": {"verify": {"rate": 150_000}},
        },
    }
    rows = evaluate(results)
    assert [(r["row"], r["config"], r["verdict"]) for r in rows] == [
        (1, "sqlite", "met"),
        (1, "postgres", "not met"),
        (8, "postgres", "met"),
    ]
    assert [r["config"] for r in gate_failures(rows)] == ["postgres"]
    table = render_table(rows).splitlines()
    assert table[0] == "| # | measure | target | SQLite, in-memory backends | PostgreSQL + Redis |"
    assert table[2].startswith("| 1 | full send stack vs bare endpoint: throughput | ≥ 0.70× | 0.80× (0.75×–0.90×)")
    assert table[3] == "| 8 | verify_audit on 1,000,000 events | ≥ 100,000/s | not run | 150,000/s — **met** |"


def test_every_row_of_the_issue_has_a_target():
    assert sorted({target.row for target in TARGETS}) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]


def test_the_doc_keeps_everything_outside_the_table_markers():
    doc = f"# Performance\n\nintro\n\n{TABLE_START}\nold table\n{TABLE_END}\n\nafter\n"
    assert rewrite_doc(doc, "| new |", "Recorded now.") == (
        f"# Performance\n\nintro\n\n{TABLE_START}\nRecorded now.\n\n| new |\n{TABLE_END}\n\nafter\n"
    )


@pytest.mark.urls("bench.urls")
def test_the_bare_send_stores_both_sides_with_none_of_the_guarantees(alice):
    chat = Chat.objects.create(owner=alice.user, title="bench", agent="echo", node="NODA1")
    events = AuditEvent.objects.count()
    response = Client().post(
        f"/bench/bare/chats/{chat.pk}/send",
        data={"text": "hello"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {alice.token}", "Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 201, response.content
    assert response.json()["reply"]["text"] == "NODA1/echo: hello"
    assert list(Message.objects.filter(chat=chat).order_by("id").values_list("role", "status")) == [
        ("operator", "delivered"),
        ("agent", "delivered"),
    ]
    assert AuditEvent.objects.count() == events


@pytest.mark.urls("bench.urls")
def test_the_offset_page_is_the_keyset_page_read_by_offset(alice):
    chat = Chat.objects.create(owner=alice.user, title="bench", agent="echo", node="NODA1")
    for i in range(7):
        Message.objects.create(chat=chat, role="agent", text=f"m{i}", node="NODA1", status="delivered")
    client = Client(headers={"Authorization": f"Bearer {alice.token}"})
    keyset = client.get(f"/api/chats/{chat.pk}/messages?limit=3").json()
    second = client.get(f"/api/chats/{chat.pk}/messages?limit=3&cursor={keyset['next_cursor']}").json()
    by_offset = client.get(f"/api/bench/offset/chats/{chat.pk}/messages?limit=3&offset=3").json()
    assert [m["id"] for m in by_offset["items"]] == [m["id"] for m in second["items"]]
