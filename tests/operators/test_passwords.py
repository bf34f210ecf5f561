"""Passwords that pass a length rule but not a guesser's first list are refused wherever a
password is set: ``create_operator --password`` and the admin's user forms."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from operators.passwords import PredictablePasswordValidator
from tests.personas import make_admin

REFUSED = [
    ("aaaaaaaaaaaa", "repeats too few characters"),
    ("abcabcabcabc", "repeats too few characters"),
    ("abcdefghijkl", "repeats too few characters"),
    ("Summer2024!!", "guessable word"),
    ("2024-Winter!!", "guessable word"),
    ("!!january2025", "guessable word"),
    ("P@ssw0rd2024!", "guessable word"),
    ("Welcome123456", "guessable word"),
]
ACCEPTED = ["pw-for-dave-console-1", "correct horse battery", "summer-in-kyiv-2024", "Tr0ub4dor&3xyz"]


@pytest.mark.parametrize(("password", "because"), REFUSED)
def test_a_predictable_password_is_refused_with_a_clear_message(password, because):
    with pytest.raises(ValidationError, match=because):
        PredictablePasswordValidator().validate(password)


@pytest.mark.parametrize("password", ACCEPTED)
def test_a_password_with_variety_and_no_guessable_core_is_accepted(password):
    PredictablePasswordValidator().validate(password)


def test_the_users_own_name_with_a_year_is_refused():
    with pytest.raises(ValidationError, match="guessable word"):
        PredictablePasswordValidator().validate("Katerina1990!!", User(username="katerina"))
    PredictablePasswordValidator().validate("Katerina1990!!", User(username="someone-else"))


def run(*args: str) -> list[str]:
    out = StringIO()
    call_command("create_operator", *args, stdout=out)
    return out.getvalue().strip().splitlines()


@pytest.mark.parametrize(
    ("username", "password", "because"),
    [
        ("grace", "aaaaaaaaaaaa", "repeats too few characters"),
        ("grace", "Summer2024!!", "guessable word"),
        ("operator-grace", "operator-grace", "too similar to the username"),
        ("grace", "grace2024!!!!", "guessable word"),
    ],
)
def test_create_operator_refuses_a_predictable_password_and_creates_nothing(db, username, password, because):
    with pytest.raises(CommandError, match=because):
        run(username, "--password", password)
    assert not User.objects.filter(username=username).exists()
    assert not AuditEvent.objects.filter(action="operator.create").exists()


def test_create_operator_exist_ok_refuses_a_predictable_password_and_keeps_the_old_one(db, client):
    run("heidi", "--password", "heidi-first-good-password")
    with pytest.raises(CommandError, match="guessable word"):
        run("heidi", "--password", "Summer2024!!", "--exist-ok")
    assert client.login(username="heidi", password="heidi-first-good-password")


@pytest.fixture
def root(db):
    return make_admin("root")


@pytest.mark.parametrize(
    ("password", "because"),
    [
        ("aaaaaaaaaaaa", "repeats too few characters"),
        ("Summer2024!!", "guessable word"),
        ("operator-ivan-01", "too similar to the username"),
    ],
)
def test_the_admins_add_user_form_refuses_a_predictable_password(root, password, because):
    response = root.admin.post(
        "/admin/auth/user/add/",
        {"username": "operator-ivan-01", "password1": password, "password2": password, "usable_password": "true"},
    )
    assert response.status_code == 200
    assert because in response.content.decode()
    assert not User.objects.filter(username="operator-ivan-01").exists()
    assert not AuditEvent.objects.filter(action="operator.create").exists()


@pytest.mark.parametrize(
    ("password", "because"),
    [
        ("aaaaaaaaaaaa", "repeats too few characters"),
        ("Summer2024!!", "guessable word"),
        ("operator-judy-01", "too similar to the username"),
        ("judy-operator-01", "too similar to the username"),
    ],
)
def test_the_admins_change_password_form_refuses_a_predictable_password(root, password, because):
    judy = User.objects.create_user("operator-judy-01", password="judy-first-good-password")
    response = root.admin.post(f"/admin/auth/user/{judy.pk}/password/", {"password1": password, "password2": password})
    assert response.status_code == 200
    assert because in response.content.decode()
    judy.refresh_from_db()
    assert judy.check_password("judy-first-good-password")
    assert not AuditEvent.objects.filter(action="operator.change", target_id=str(judy.pk)).exists()


def test_the_admins_change_password_form_accepts_a_good_password(root):
    judy = User.objects.create_user("operator-judy-01", password="judy-first-good-password")
    response = root.admin.post(
        f"/admin/auth/user/{judy.pk}/password/",
        {"password1": "kyiv-lviv-odesa-trains", "password2": "kyiv-lviv-odesa-trains"},
    )
    assert response.status_code == 302, response.content
    judy.refresh_from_db()
    assert judy.check_password("kyiv-lviv-odesa-trains")
    assert AuditEvent.objects.filter(action="operator.change", target_id=str(judy.pk)).exists()
