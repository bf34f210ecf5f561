"""``create_operator``: the operator's one way in from the command line."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from operators.models import ApiToken
from operators.roles import is_operator
from operators.tokens import token_digest


def run(*args: str) -> list[str]:
    out = StringIO()
    call_command("create_operator", *args, stdout=out)
    return out.getvalue().strip().splitlines()


def test_create_operator_prints_a_token_last_and_stores_only_its_digest(db, client):
    lines = run("carol", "--token")
    token = lines[-1]
    user = User.objects.get(username="carol")
    stored = ApiToken.objects.get(user=user)
    assert (stored.prefix, stored.digest) == (token[:8], token_digest(token))
    assert not ApiToken.objects.filter(digest=token).exists()
    assert not user.has_usable_password()
    assert is_operator(user)
    assert client.get("/api/chats", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    event = AuditEvent.objects.get(action="operator.create")
    assert (event.actor, event.target_id) == ("system", str(user.pk))
    issued = AuditEvent.objects.get(action="token.create")
    assert issued.target_id == stored.prefix
    assert token not in repr(issued.details)


def test_create_operator_with_a_password_can_log_in(db, client):
    run("dave", "--password", "pw-for-dave-console-1")
    assert client.login(username="dave", password="pw-for-dave-console-1")


@pytest.mark.parametrize(
    ("password", "because"),
    [
        ("a", "too short"),
        ("short-pass1", "too short"),
        ("123456789012345", "entirely numeric"),
        ("password1234", "too common"),
    ],
)
def test_a_weak_password_is_refused_and_nothing_is_created(db, password, because):
    with pytest.raises(CommandError, match=because):
        run("weakling", "--password", password)
    assert not User.objects.filter(username="weakling").exists()


def test_an_existing_operator_is_refused_unless_exist_ok_which_issues_a_new_token(db, client):
    first = run("erin", "--token")[-1]
    with pytest.raises(CommandError, match="already exists"):
        run("erin", "--token")
    second = run("erin", "--token", "--exist-ok")[-1]
    assert second != first
    for token in (first, second):
        assert client.get("/api/chats", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    assert AuditEvent.objects.filter(action="operator.create").count() == 1


def test_exist_ok_with_a_password_resets_it_and_revokes_the_old_tokens(db, client):
    old = run("fred", "--password", "fred-first-password", "--token")[-1]
    new = run("fred", "--password", "fred-second-password", "--token", "--exist-ok")[-1]
    assert client.get("/api/chats", HTTP_AUTHORIZATION=f"Bearer {old}").status_code == 401
    assert client.get("/api/chats", HTTP_AUTHORIZATION=f"Bearer {new}").status_code == 200
    revoked = AuditEvent.objects.get(action="token.delete")
    assert revoked.details["reason"] == "password_change"


@pytest.mark.parametrize("name", ["has space", "", "x" * 151, "semi;colon"])
def test_a_bad_username_is_refused(db, name):
    with pytest.raises(CommandError):
        run(name)
