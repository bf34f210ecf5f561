"""Only operators use the operator API and the console. An auditor's or a superuser's
session, or a token whose user lost the role, is refused with 403 and an audit event."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import Group

from audit.models import AuditEvent
from operators.roles import OPERATORS_GROUP
from tests.personas import make_admin, make_auditor

API = [
    ("get", "/api/chats", None),
    ("post", "/api/chats", {"title": "mine now", "agent": "echo"}),
    ("get", "/api/chats/{chat}", None),
    ("get", "/api/chats/{chat}/messages", None),
    ("post", "/api/chats/{chat}/send", {"text": "let me in"}),
    ("get", "/api/nodes", None),
]
CONSOLE = [
    ("get", "/console/"),
    ("get", "/console/chats/{chat}/"),
    ("get", "/console/chats/{chat}/updates"),
    ("get", "/console/chats/{chat}/older"),
    ("post", "/console/chats/{chat}/send"),
    ("post", "/console/chats/{chat}/rename"),
    ("post", "/console/chats/{chat}/archive"),
]


@pytest.fixture(params=["auditor", "superuser"])
def intruder(request, db):
    return make_auditor("audrey") if request.param == "auditor" else make_admin("root")


def test_a_session_without_the_operator_role_is_refused_on_every_operator_endpoint(intruder, alice, nodes):
    chat = alice.new_chat()
    for method, path, body in API:
        response = getattr(intruder.admin, method)(
            path.format(chat=chat["id"]), body, content_type="application/json", HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex
        )
        assert response.status_code == 403, (path, response.content)
        assert response.json()["error"] == "forbidden"
    for method, path in CONSOLE:
        response = getattr(intruder.admin, method)(path.format(chat=chat["id"]), {"text": "x", "idempotency_key": "k"})
        assert response.status_code == 403, path
    assert nodes["NODA1"].calls == []
    denied = AuditEvent.objects.filter(action="authz.denied", actor=intruder.username)
    assert denied.count() == len(API) + len(CONSOLE)
    assert {event.details["via"] for event in denied} == {"api", "console"}
    assert {event.outcome for event in denied} == {"denied"}


def test_a_token_whose_user_left_the_operators_group_is_refused(alice, client):
    alice.user.groups.remove(Group.objects.get(name=OPERATORS_GROUP))
    response = client.get("/api/chats", HTTP_AUTHORIZATION=f"Bearer {alice.token}")
    assert (response.status_code, response.json()["error"]) == (403, "forbidden")
    assert AuditEvent.objects.get(action="authz.denied").actor == "alice"


def test_a_refused_operator_cannot_flood_the_audit_trail(alice, client):
    from audit.services import REPEATS_RECORDED_PER_MINUTE

    alice.user.groups.remove(Group.objects.get(name=OPERATORS_GROUP))
    for _ in range(REPEATS_RECORDED_PER_MINUTE + 10):
        assert client.get("/api/chats", HTTP_AUTHORIZATION=f"Bearer {alice.token}").status_code == 403
    assert AuditEvent.objects.filter(action="authz.denied").count() == REPEATS_RECORDED_PER_MINUTE


def test_no_credentials_are_still_a_401(anonymous):
    response = anonymous.get("/api/chats")
    assert (response.status_code, response.json()["error"]) == (401, "not_authenticated")


def test_the_operators_group_is_there_again_after_a_flush(transactional_db):
    from django.core.management import call_command

    call_command("flush", interactive=False, verbosity=0)
    assert Group.objects.filter(name=OPERATORS_GROUP).exists()
