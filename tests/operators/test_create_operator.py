"""``create_operator``: the operator's one way in from the command line."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token

from audit.models import AuditEvent


def run(*args):
    from io import StringIO

    out = StringIO()
    call_command("create_operator", *args, stdout=out)
    return out.getvalue().strip().splitlines()


def test_create_operator_prints_the_token_last(db):
    lines = run("carol", "--token")
    token = Token.objects.get(user__username="carol")
    assert lines[-1] == token.key
    user = User.objects.get(username="carol")
    assert not user.has_usable_password()
    event = AuditEvent.objects.get(action="operator.create")
    assert (event.actor, event.target_id) == ("system", str(user.pk))


def test_create_operator_with_a_password_can_log_in(db, client):
    run("dave", "--password", "pw-for-dave-123")
    assert client.login(username="dave", password="pw-for-dave-123")


def test_an_existing_operator_is_refused_unless_exist_ok(db):
    first = run("erin", "--token")[-1]
    with pytest.raises(CommandError, match="already exists"):
        run("erin", "--token")
    assert run("erin", "--token", "--exist-ok")[-1] == first
    assert AuditEvent.objects.filter(action="operator.create").count() == 1


@pytest.mark.parametrize("name", ["has space", "", "x" * 151, "semi;colon"])
def test_a_bad_username_is_refused(db, name):
    with pytest.raises(CommandError):
        run(name)
