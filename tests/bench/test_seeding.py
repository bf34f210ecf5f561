"""bench/seeding.py: the audit events it seeds form a chain that verifies and prunes
completely; the messages it seeds page through the API like sent ones."""

from __future__ import annotations

import itertools
import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from audit.chain import chain_head, chain_verify, event_hash
from audit.chain_keys import signing_key
from audit.models import AuditEvent
from bench.seeding import seed_audit_events, seed_chat_messages
from chats.models import Chat, Message
from tests.audit.helpers import days_ago, seed_events


def test_seeded_audit_events_verify_and_prune_completely(db, monkeypatch):
    progress: list[tuple[int, int]] = []
    monkeypatch.setattr("bench.seeding.BATCH_SIZE", 100)
    result = seed_audit_events(250, older_than_days=91, on_progress=lambda done, total: progress.append((done, total)))
    assert (result.count, result.first_id, result.last_id) == (250, 1, 250)
    assert progress == [(100, 250), (200, 250), (250, 250)]
    events = list(AuditEvent.objects.order_by("id"))
    assert [event.id for event in events] == list(range(1, 251))
    assert all(event.hash == event_hash(event) for event in events)  # the live code's own hash
    assert {event.key_id for event in events} == {signing_key().key_id}
    assert all(a.ts < b.ts < timezone.now() - timezone.timedelta(days=91) for a, b in itertools.pairwise(events))
    head = chain_head()
    assert head is not None
    assert (head.event_id, head.hash, head.ts) == (250, events[-1].hash, events[-1].ts)
    report = chain_verify(chunk_size=64)
    assert (report.ok, report.checked) == (True, 250)

    out = StringIO()
    call_command("prune_audit", "--verbosity", "0", stdout=out)
    assert re.match(r"Pruned 250 events in ", out.getvalue()), out.getvalue()
    assert list(AuditEvent.objects.values_list("action", flat=True)) == ["audit.prune"]
    assert chain_verify().ok


def test_seeding_continues_the_chain_from_its_head(db):
    before = seed_events(days_ago(200, count=5))
    result = seed_audit_events(20, older_than_days=100)
    assert (result.first_id, result.last_id) == (before[-1] + 1, before[-1] + 20)
    first = AuditEvent.objects.get(id=result.first_id)
    assert first.prev_hash == AuditEvent.objects.get(id=before[-1]).hash
    assert first.ts > AuditEvent.objects.get(id=before[-1]).ts
    assert chain_verify().ok
    assert seed_audit_events(0, older_than_days=100).count == 0
    assert chain_verify().ok


def test_seeding_after_an_event_too_recent_to_prune_is_refused(db):
    seed_events(days_ago(1))
    with pytest.raises(ValueError, match="could not be pruned"):
        seed_audit_events(10, older_than_days=30)
    assert AuditEvent.objects.count() == 1


def test_seeded_messages_page_through_the_api_in_order(alice, monkeypatch):
    monkeypatch.setattr("bench.seeding.BATCH_SIZE", 64)
    chat = Chat.objects.get(pk=alice.new_chat()["id"])
    progress: list[tuple[int, int]] = []
    result = seed_chat_messages(chat, 250, on_progress=lambda done, total: progress.append((done, total)))
    assert result.count == 250
    assert progress == [(64, 250), (128, 250), (192, 250), (250, 250)]

    seen, cursor = [], None
    while True:
        params = {"limit": 40, **({"cursor": cursor} if cursor else {})}
        page = alice.api.get(f"/api/chats/{chat.pk}/messages", params).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    stored = list(Message.objects.filter(chat=chat).order_by("-ts", "-id"))
    assert [item["id"] for item in seen] == [message.pk for message in stored]
    assert len({item["id"] for item in seen}) == 250
    assert [item["role"] for item in reversed(seen)] == ["operator", "agent"] * 125
    assert {item["status"] for item in seen} == {"delivered"}
    assert len({item["ts"] for item in seen}) == 250
    oldest_first = stored[::-1]
    for question, answer in zip(oldest_first[::2], oldest_first[1::2], strict=True):
        assert (question.operator_id, answer.reply_to_id, answer.operator_id) == (alice.user.pk, question.pk, None)
    assert len({message.idempotency_key for message in oldest_first[::2]}) == 125
    chat.refresh_from_db()
    assert chat.last_activity_at == stored[0].ts

    # A second seeding follows the first, with keys of its own.
    seed_chat_messages(chat, 10)
    assert Message.objects.filter(chat=chat).count() == 260
    assert Message.objects.filter(chat=chat).order_by("-ts", "-id").first().text == "Seeded answer 9"
