"""Usage for auditors in the admin: delivered sends and tokens per operator, node, model and
day, for a date range, with CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from chats.models import Chat, Message
from tests.chats.conversation_helpers import exchange
from tests.personas import make_admin

URL = "/admin/chats/messageusage/"


def reply_on(chat, *, day, model, tokens):
    _, reply = exchange(chat, "q", "a", ts=day)
    Message.objects.filter(pk=reply.pk).update(model=model, tokens_used=tokens)


@pytest.fixture
def usage(alice, bob):
    today = timezone.now().replace(hour=10, minute=0, second=0, microsecond=0)
    alice_chat = Chat.objects.create(owner=alice.user, title="a", agent="echo", node="NODA1")
    bob_chat = Chat.objects.create(owner=bob.user, title="b", agent="echo", node="NODA2")
    reply_on(alice_chat, day=today, model="llama", tokens=10)
    reply_on(alice_chat, day=today, model="llama", tokens=5)
    reply_on(alice_chat, day=today, model="=cmd()", tokens=None)
    reply_on(bob_chat, day=today - timedelta(days=1), model="qwen", tokens=7)
    reply_on(bob_chat, day=today - timedelta(days=40), model="qwen", tokens=1000)  # outside the default range
    return today.date()


def test_an_auditor_sees_usage_per_operator_node_model_and_day(auditor, usage):
    index = auditor.admin.get("/admin/").content.decode()
    assert URL in index
    response = auditor.admin.get(URL)
    assert response.status_code == 200
    rows = [(r.day, r.operator, r.node, r.model, r.sends, r.tokens) for r in response.context["rows"]]
    yesterday = usage - timedelta(days=1)
    assert rows == [
        (usage, "alice", "NODA1", "=cmd()", 1, 0),
        (usage, "alice", "NODA1", "llama", 2, 15),
        (yesterday, "bob", "NODA2", "qwen", 1, 7),
    ]
    assert (response.context["total_sends"], response.context["total_tokens"]) == (4, 22)
    event = AuditEvent.objects.filter(action="audit.read", target_type="usage").get()
    assert (event.actor, event.details["view"]) == ("audrey", "usage")


def test_a_date_range_selects_the_days(auditor, usage):
    day = (usage - timedelta(days=40)).isoformat()
    response = auditor.admin.get(URL, {"since": day, "until": day})
    assert [(r.operator, r.tokens) for r in response.context["rows"]] == [("bob", 1000)]


def test_the_csv_export_has_the_same_rows_and_defuses_formulas(auditor, usage):
    response = auditor.admin.get(URL, {"format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="usage-')
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["day", "operator", "node", "model", "sends", "tokens"]
    assert rows[1] == [usage.isoformat(), "alice", "NODA1", "'=cmd()", "1", "0"]
    assert len(rows) == 4
    assert AuditEvent.objects.get(action="audit.read", target_type="usage").details["view"] == "usage.csv"


@pytest.mark.parametrize(
    "params",
    [
        {"since": "yesterday"},
        {"since": "2026-02-10", "until": "2026-02-01"},
        {"since": "2020-01-01", "until": "2026-01-01"},
    ],
)
def test_a_bad_range_is_refused(auditor, usage, params):
    response = auditor.admin.get(URL, params)
    assert response.status_code == 400
    assert response.context["error"]
    assert not AuditEvent.objects.filter(action="audit.read", target_type="usage").exists()


def test_a_superuser_sees_usage_too(db, usage):
    root = make_admin("root")
    assert root.admin.get(URL).status_code == 200


def test_staff_without_audit_access_and_operators_do_not(db, usage, alice):
    from django.contrib.auth.models import User
    from django.test import Client

    User.objects.create_user("clerk", password="clerk-correct-horse-battery", is_staff=True)
    clerk = Client()
    clerk.login(username="clerk", password="clerk-correct-horse-battery")
    assert clerk.get(URL).status_code == 403
    assert URL not in clerk.get("/admin/").content.decode()
    operator = Client()
    operator.login(username="alice", password=alice.password)
    assert operator.get(URL).status_code == 302  # to the admin's login: not staff
