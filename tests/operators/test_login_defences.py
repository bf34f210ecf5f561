"""Password guessing on the console's and the admin's login forms: limited per user and
address, per address, and per user across addresses (a high ceiling), refused before the
hasher runs, audited within a budget — and never a way to lock a user out from elsewhere."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from audit.models import AuditEvent
from sofiia.lib.env import RatePolicy
from tests.hashers import CountingPBKDF2PasswordHasher
from tests.personas import make_persona
from tests.test_metrics import sample

FORMS = {"console": "/console/login/", "admin": "/admin/login/"}


@pytest.fixture
def counting_hasher(settings):
    settings.PASSWORD_HASHERS = ["tests.hashers.CountingPBKDF2PasswordHasher"]
    CountingPBKDF2PasswordHasher.runs = 0
    return CountingPBKDF2PasswordHasher


def log_in(client: Client, surface: str, username: str, password: str, address: str = "198.51.100.20"):
    return client.post(FORMS[surface], {"username": username, "password": password}, REMOTE_ADDR=address)


def log_in_via_proxy(surface: str, username: str, password: str, address: str):
    """A login as it arrives through the reverse proxy: the client's address in X-Forwarded-For."""
    return Client().post(
        FORMS[surface],
        {"username": username, "password": password},
        REMOTE_ADDR="127.0.0.1",
        HTTP_X_FORWARDED_FOR=address,
    )


def make_user(name: str, surface: str):
    persona = make_persona(name)
    if surface == "admin":
        persona.user.is_staff = True
        persona.user.save()
    return persona


def logged_in(response) -> bool:
    return response.status_code == 302 and "_auth_user_id" in response.client.session


@pytest.fixture
def behind_proxy(settings):
    settings.SOFIIA_TRUSTED_PROXIES = ["127.0.0.1/32"]


@pytest.mark.parametrize("surface", ["console", "admin"])
def test_the_sixth_wrong_password_is_refused_without_running_the_hasher(surface, db, counting_hasher, client):
    victim = make_user("victim", surface)
    runs_before = counting_hasher.runs
    for attempt in range(5):
        assert log_in(client, surface, "victim", f"guess-number-{attempt}").status_code == 200
    assert counting_hasher.runs - runs_before == 5
    runs_before = counting_hasher.runs
    refused = log_in(client, surface, "victim", victim.password)  # even the right one
    assert refused.status_code == 200
    assert counting_hasher.runs == runs_before
    page = refused.content.decode()
    assert re.search(r"Too many failed logins for this user from this address\. Try again in \d+ (s|min)\.", page), (
        page[:2000]
    )
    assert "_auth_user_id" not in client.session
    failed = AuditEvent.objects.filter(action="auth.login_failed", actor="victim").order_by("id")
    assert [event.details.get("reason", "credentials") for event in failed] == ["credentials"] * 5 + ["throttled"]
    assert {event.details["via"] for event in failed} == {surface}
    assert (failed.last().details["scope"], failed.last().details["retry_after"] > 0) == ("user_address", True)


@pytest.mark.parametrize("surface", ["console", "admin"])
def test_a_guesser_from_one_address_does_not_lock_the_user_out_from_another(surface, db, behind_proxy):
    alice = make_user("alice", surface)
    for attempt in range(6):
        refused = log_in_via_proxy(surface, "alice", f"guess-number-{attempt}", address="10.0.0.1")
        assert not logged_in(refused)
    assert logged_in(log_in_via_proxy(surface, "alice", alice.password, address="10.0.0.2"))
    assert "Too many failed logins for this user from this address." in refused.content.decode()
    # The guesser is still stopped, the right password included.
    assert not logged_in(log_in_via_proxy(surface, "alice", alice.password, address="10.0.0.1"))
    assert AuditEvent.objects.filter(action="auth.login", actor="alice").count() == 1
    throttled = AuditEvent.objects.filter(action="auth.login_failed", actor="alice", details__reason="throttled")
    assert {event.ip for event in throttled} == {"10.0.0.1"}


@pytest.mark.parametrize("surface", ["console", "admin"])
def test_one_address_guessing_six_accounts_does_not_lock_them_for_their_owners(surface, db, behind_proxy):
    owners = [make_user(f"owner{index}", surface) for index in range(6)]
    for owner in owners:
        for attempt in range(6):
            log_in_via_proxy(surface, owner.username, f"guess-number-{attempt}", address="203.0.113.9")
    # The guesser spent its address's allowance: every further guess is refused unheard.
    refused = log_in_via_proxy(surface, "owner0", owners[0].password, address="203.0.113.9")
    assert "Too many failed logins" in refused.content.decode()
    for index, owner in enumerate(owners):
        assert logged_in(log_in_via_proxy(surface, owner.username, owner.password, address=f"192.0.2.{index + 1}"))
    assert AuditEvent.objects.filter(action="auth.login").count() == 6


@pytest.mark.parametrize("surface", ["console", "admin"])
def test_distributed_guessing_trips_the_per_user_ceiling(surface, db, behind_proxy, settings, counting_hasher):
    settings.SOFIIA_LOGIN_LIMIT_USER_CEILING = RatePolicy(limit=12, window=900)
    victim = make_user("victim", surface)
    for attempt in range(12):
        response = log_in_via_proxy(surface, "victim", f"guess-number-{attempt}", address=f"10.1.0.{attempt % 4 + 1}")
        assert "Too many" not in response.content.decode()  # 3 per address: under the other limits
    runs_before = counting_hasher.runs
    refused = log_in_via_proxy(surface, "victim", victim.password, address="10.1.0.200")
    assert not logged_in(refused)
    assert counting_hasher.runs == runs_before
    assert re.search(r"Too many failed logins for this user\. Try again in \d+ (s|min)\.", refused.content.decode())
    event = AuditEvent.objects.filter(action="auth.login_failed", actor="victim").latest("id")
    assert (event.details["reason"], event.details["scope"]) == ("throttled", "user")


def test_the_wait_is_over_when_the_window_slides(db, client, clock):
    victim = make_persona("victim")
    for attempt in range(5):
        log_in(client, "console", "victim", f"wrong-{attempt}")
    assert log_in(client, "console", "victim", victim.password).status_code == 200
    clock(15 * 60 + 1)
    assert log_in(client, "console", "victim", victim.password).status_code == 302


def test_one_address_guessing_many_names_is_limited_too(db, client, counting_hasher):
    for index in range(30):
        log_in(client, "console", f"nobody-{index}", "any-password-at-all", address="203.0.113.66")
    runs_before = counting_hasher.runs
    refused = log_in(client, "console", "someone-else", "any-password-at-all", address="203.0.113.66")
    assert "Too many failed logins from this address." in refused.content.decode()
    assert counting_hasher.runs == runs_before
    # Another address is not affected.
    assert (
        "Too many" not in log_in(client, "console", "someone-else", "x" * 12, address="203.0.113.67").content.decode()
    )


def test_failed_logins_are_counted_and_their_audit_rows_budgeted(db, client):
    from audit.services import REPEATS_RECORDED_PER_MINUTE

    before = client.get("/metrics").content.decode()
    for index in range(REPEATS_RECORDED_PER_MINUTE + 10):
        log_in(client, "console", f"spray-{index}", "password-spray-1", address="192.0.2.50")
    after = client.get("/metrics").content.decode()
    name = "sofiia_login_failures_total"
    counted = sum(
        sample(after, name, surface="console", reason=reason) - sample(before, name, surface="console", reason=reason)
        for reason in ("credentials", "throttled")
    )
    assert counted == REPEATS_RECORDED_PER_MINUTE + 10
    assert AuditEvent.objects.filter(action="auth.login_failed").count() == REPEATS_RECORDED_PER_MINUTE


def test_a_non_staff_operator_refused_at_the_admin_login_is_audited(alice, client):
    response = log_in(client, "admin", "alice", alice.password)
    assert response.status_code == 200
    event = AuditEvent.objects.get(action="auth.login_failed", actor="alice")
    assert (event.details["via"], event.details["reason"]) == ("admin", "not_allowed")
