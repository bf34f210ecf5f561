"""API tokens: stored as digests, expiring, revoked when the password changes, and refused
in every malformed shape without a server error."""

from __future__ import annotations

import pytest
from django.conf import settings

from audit.models import AuditEvent
from operators.models import ApiToken
from operators.services import operator_create


def get(client, token: str):
    return client.get("/api/chats", HTTP_AUTHORIZATION=f"Bearer {token}")


def test_a_token_expires_after_its_lifetime(alice, client, clock):
    assert get(client, alice.token).status_code == 200
    clock(settings.SOFIIA_TOKEN_TTL_DAYS * 86400 - 60)
    assert get(client, alice.token).status_code == 200
    clock(120)
    response = get(client, alice.token)
    assert (response.status_code, response.json()["error"]) == (401, "authentication_failed")
    assert "expired" in response.json()["detail"]
    assert not ApiToken.objects.filter(user=alice.user).exists()


def test_a_password_change_in_the_admin_revokes_the_tokens(alice, client, db):
    from tests.personas import make_admin

    root = make_admin("root")
    response = root.admin.post(
        f"/admin/auth/user/{alice.user.pk}/password/",
        {"password1": "alice-brand-new-password", "password2": "alice-brand-new-password"},
    )
    assert response.status_code == 302, response.content
    assert get(client, alice.token).status_code == 401
    event = AuditEvent.objects.get(action="token.delete")
    assert (event.target_id, event.details["reason"]) == (str(alice.user.pk), "password_change")


def test_a_hash_upgrade_at_login_is_not_a_password_change(alice, client, settings):
    # A login with a stronger hasher configured rehashes the password; the tokens stay.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    assert client.login(username="alice", password=alice.password)
    assert get(client, alice.token).status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer a b",
        "Bearer not-hex-at-all",
        "Bearer " + "0" * 48,
        "Bearer \xff\xfe\xfd",
        "Bearer " + "a" * 5000,
    ],
)
def test_a_bad_token_is_a_401_never_a_500(db, client, header):
    response = client.get("/api/chats", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response.json()["error"] == "authentication_failed"


def test_the_database_never_holds_a_token(db):
    created = operator_create(username="kim", with_token=True)
    assert created.token is not None
    stored = ApiToken.objects.get(user=created.operator)
    assert created.token not in (stored.prefix, stored.digest)
    assert stored.prefix == created.token[:8]
