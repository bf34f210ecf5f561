"""Each audited action is written by the real flow that causes it, over HTTP, with the
request id and the client address as far as it can be trusted."""

from __future__ import annotations

import re
import uuid

import pytest
import requests
from django.contrib.auth.models import Group, User
from django.test import Client

from audit.chain import chain_verify
from operators.models import ApiToken
from operators.services import operator_create
from tests.audit.helpers import events, only_event
from tests.caches import clear_caches
from tests.personas import make_admin, make_persona


def console_login(client: Client, username: str, password: str, **extra):
    page = client.get("/console/login/", **extra)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    return client.post(
        "/console/login/", {"username": username, "password": password, "csrfmiddlewaretoken": token}, **extra
    )


BROWSER = {"REMOTE_ADDR": "203.0.113.9", "HTTP_USER_AGENT": "Firefox/140.0", "HTTP_X_REQUEST_ID": "login-1"}


# --- Sign-in and sign-out -----------------------------------------------------------


def test_a_console_login_is_audited_with_the_client_address(alice):
    client = Client(enforce_csrf_checks=True)
    response = console_login(client, "alice", alice.password, HTTP_X_FORWARDED_FOR="127.0.0.1", **BROWSER)
    assert response.status_code == 302
    event = only_event(action="auth.login")
    assert (event.actor, event.outcome, event.target_type) == ("alice", "success", "user")
    assert event.target_id == str(alice.user.pk)
    assert event.details == {"via": "console"}
    # The browser's own X-Request-ID is not trusted: the event carries the id it was answered with.
    assert (event.ip, event.user_agent) == ("203.0.113.9", "Firefox/140.0")
    assert event.request_id == response["X-Request-ID"] != "login-1"


def test_a_failed_console_login_is_audited_without_the_password(alice):
    client = Client()
    response = console_login(client, "alice", "guessed-wrong-42", **BROWSER)
    assert response.status_code == 200
    event = only_event(action="auth.login_failed")
    assert (event.actor, event.outcome, event.ip) == ("alice", "failure", "203.0.113.9")
    assert event.details == {"via": "console", "username": "alice"}
    assert "guessed-wrong-42" not in repr(event.__dict__)
    assert not events(action="auth.login")


def test_a_failed_login_for_an_unknown_name_is_audited_under_that_name(db):
    console_login(Client(), "mallory", "x", **BROWSER)
    assert only_event(action="auth.login_failed").actor == "mallory"


def test_a_logout_is_audited(alice):
    client = Client()
    console_login(client, "alice", alice.password, **BROWSER)
    response = client.post("/console/logout/", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 302
    event = only_event(action="auth.logout")
    assert (event.actor, event.ip, event.details) == ("alice", "203.0.113.9", {"via": "console"})
    assert client.get("/console/").status_code == 302


def test_logging_out_without_a_session_records_nothing(db):
    assert Client().post("/console/logout/").status_code == 302
    assert not events(action="auth.logout")


def test_admin_logins_are_audited(db):
    User.objects.create_superuser("root", password="root-pass-123")
    assert Client().post("/admin/login/", {"username": "root", "password": "nope"}, **BROWSER).status_code == 200
    response = Client().post("/admin/login/", {"username": "root", "password": "root-pass-123"}, **BROWSER)
    assert response.status_code == 302
    failed, succeeded = only_event(action="auth.login_failed"), only_event(action="auth.login")
    assert (failed.actor, failed.details["via"]) == ("root", "admin")
    assert (succeeded.actor, succeeded.details["via"], succeeded.ip) == ("root", "admin", "203.0.113.9")


# --- Chats and messages ---------------------------------------------------------------


def test_creating_a_chat_is_audited_with_the_request_id(alice):
    headers = {"HTTP_X_REQUEST_ID": "req-chat-1", "REMOTE_ADDR": "198.51.100.4"}
    response = alice.api.post("/api/chats", {"title": "T", "agent": "echo"}, format="json", **headers)
    chat = response.json()
    event = only_event(action="chat.create")
    assert (event.actor, event.chat_id, event.target_type) == ("alice", chat["id"], "chat")
    assert event.target_id == str(chat["id"])
    assert (event.request_id, event.ip) == (response["X-Request-ID"], "198.51.100.4")


@pytest.mark.parametrize(
    ("agent", "status", "outcome"), [("echo", 201, "delivered"), ("fail500", 502, "failed"), ("slow3", 504, "timeout")]
)
def test_a_send_is_audited_with_its_outcome(alice, settings, behind_proxy, agent, status, outcome):
    settings.SOFIIA_INFER_TIMEOUT = 0.5
    chat = alice.new_chat(agent=agent)
    response = alice.send(chat["id"], "hi", key="k-1", HTTP_X_REQUEST_ID="req-send-1")
    assert response.status_code == status
    event = only_event(action="message.send")
    assert (event.actor, event.outcome, event.chat_id) == ("alice", outcome, chat["id"])
    assert event.request_id == "req-send-1"
    assert event.target_id == str(response.json()["operator_message"]["id"])
    assert event.details["idempotency_key"] == "k-1"


def test_a_repeated_send_answered_from_the_database_is_audited_as_a_replay(alice, nodes, behind_proxy):
    chat = alice.new_chat()
    first = alice.send(chat["id"], "once", key="same-key")
    clear_caches()  # the idempotency cache forgot the answer: the database replays it
    again = alice.send(chat["id"], "once", key="same-key", HTTP_X_REQUEST_ID="req-replay")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again["Idempotent-Replayed"] == "true"
    assert len(nodes["NODA1"].calls_with("once")) == 1
    replay = only_event(action="message.replay")
    assert (replay.actor, replay.chat_id, replay.request_id) == ("alice", chat["id"], "req-replay")
    assert replay.target_id == str(first.json()["operator_message"]["id"])
    assert replay.details == {"source": "database", "idempotency_key": "same-key"}
    assert len(events(action="message.send")) == 1


def test_a_repeated_send_answered_from_the_idempotency_cache_is_audited_as_a_replay(alice, behind_proxy):
    chat = alice.new_chat()
    first = alice.send(chat["id"], "twice", key="cached-key")
    alice.send(chat["id"], "twice", key="cached-key", HTTP_X_REQUEST_ID="req-cached")
    replay = only_event(action="message.replay")
    assert (replay.actor, replay.chat_id, replay.request_id) == ("alice", chat["id"], "req-cached")
    assert replay.target_id == str(first.json()["operator_message"]["id"])
    assert replay.details == {"source": "cache", "idempotency_key": "cached-key"}


def test_a_rate_limit_block_is_audited_through_http(alice, settings, behind_proxy):
    from sofiia.lib.env import RatePolicy

    settings.SOFIIA_RATE_LIMIT_CHAT = RatePolicy(limit=1, window=60)
    chat = alice.new_chat()
    alice.send(chat["id"], "one", key="rl-1")
    blocked = alice.send(chat["id"], "two", key="rl-2", HTTP_X_REQUEST_ID="req-blocked")
    assert blocked.status_code == 429
    block = only_event(action="ratelimit.block")
    assert (block.actor, block.chat_id, block.outcome, block.request_id) == (
        "alice",
        chat["id"],
        "blocked",
        "req-blocked",
    )
    assert block.details["scope"] == "chat"


# --- Client address -------------------------------------------------------------------


def test_the_client_address_is_the_peer_not_a_header_the_client_sent(alice):
    alice.new_chat(title="spoof")  # from the test client's default peer
    spoofed = {"REMOTE_ADDR": "203.0.113.50", "HTTP_X_FORWARDED_FOR": "127.0.0.1, 10.0.0.1", "HTTP_X_REAL_IP": "::1"}
    alice.api.post("/api/chats", {"title": "x", "agent": "echo"}, format="json", **spoofed)
    assert [e.ip for e in events(action="chat.create")] == ["127.0.0.1", "203.0.113.50"]


def test_behind_a_trusted_proxy_the_forwarded_client_is_recorded(alice, settings):
    settings.SOFIIA_TRUSTED_PROXIES = ["10.0.0.0/8"]
    via_proxy = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "127.0.0.1, 198.51.100.7, 10.0.0.3"}
    alice.api.post("/api/chats", {"title": "x", "agent": "echo"}, format="json", **via_proxy)
    direct = {"REMOTE_ADDR": "192.0.2.1", "HTTP_X_FORWARDED_FOR": "198.51.100.7"}
    alice.api.post("/api/chats", {"title": "y", "agent": "echo"}, format="json", **direct)
    assert [e.ip for e in events(action="chat.create")] == ["198.51.100.7", "192.0.2.1"]


@pytest.mark.parametrize(
    ("peer", "recorded"),
    [
        ("2001:DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("::ffff:192.0.2.8", "::ffff:192.0.2.8"),
        ("::ffff:c000:208", "::ffff:192.0.2.8"),
        ("1:0:0:2:0:0:0:3", "1:0:0:2::3"),
        ("fe80::1%eth0", "fe80::1"),
        ("[2001:db8::7]:443", "2001:db8::7"),
    ],
)
def test_ipv6_client_addresses_are_stored_canonically_and_hash_the_same_when_read_back(alice, peer, recorded):
    alice.api.post("/api/chats", {"title": "v6", "agent": "echo"}, format="json", REMOTE_ADDR=peer)
    assert only_event(action="chat.create").ip == recorded
    assert chain_verify().ok


@pytest.mark.live
def test_through_gunicorn_a_forwarded_header_counts_only_from_a_trusted_proxy(live_console):
    alice = make_persona("alice")
    for trusted, expected in (("", "127.0.0.1"), ("127.0.0.1", "198.51.100.7")):
        console = live_console(workers=1, SOFIIA_TRUSTED_PROXIES=trusted)
        response = requests.post(
            f"{console.base}/api/chats",
            json={"title": trusted or "direct", "agent": "echo"},
            headers={"Authorization": f"Bearer {alice.token}", "X-Forwarded-For": "198.51.100.7"},
            timeout=30,
        )
        assert response.status_code == 201
        event = only_event(action="chat.create", details__title=trusted or "direct")
        assert event.ip == expected
        console.stop()


# --- Admin changes to operators -------------------------------------------------------


@pytest.fixture
def root(db):
    return make_admin("root")


def test_adding_an_operator_in_the_admin_is_audited(root):
    response = root.admin.post(
        "/admin/auth/user/add/",
        {
            "username": "frank",
            "password1": "Frank-pass-123!",
            "password2": "Frank-pass-123!",
            "usable_password": "true",
        },
        REMOTE_ADDR="192.0.2.44",
    )
    assert response.status_code == 302, response.content
    frank = User.objects.get(username="frank")
    event = only_event(action="operator.create")
    assert (event.actor, event.target_type, event.target_id) == ("root", "user", str(frank.pk))
    assert event.ip == "192.0.2.44"
    assert event.details["via"] == "admin"
    assert event.details["name"] == "frank"
    assert "Frank-pass-123!" not in repr(event.__dict__)
    assert frank.password not in repr(event.__dict__)


def test_changing_an_operator_in_the_admin_is_audited_with_the_changed_fields(root, alice):
    response = root.admin.post(
        f"/admin/auth/user/{alice.user.pk}/change/",
        {
            "username": "alice",
            "first_name": "Alice",
            "last_name": "",
            "email": "",
            "is_active": "",  # deactivated
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.content
    alice.user.refresh_from_db()
    assert not alice.user.is_active
    event = only_event(action="operator.change")
    assert (event.actor, event.target_id) == ("root", str(alice.user.pk))
    changed = event.details["changes"][0]["changed"]["fields"]
    assert {"First name", "Active"} <= set(changed)


def test_changing_an_operators_password_in_the_admin_is_audited(root, alice):
    response = root.admin.post(
        f"/admin/auth/user/{alice.user.pk}/password/",
        {"password1": "New-alice-pass-456", "password2": "New-alice-pass-456", "usable_password": "true"},
    )
    assert response.status_code == 302, response.content
    event = only_event(action="operator.change")
    assert event.details["changes"] == [{"changed": {"fields": ["password"]}}]
    assert "New-alice-pass-456" not in repr(event.__dict__)


def test_deleting_operators_in_the_admin_is_audited_one_event_each(root):
    doomed = [User.objects.create_user(name) for name in ("gina", "hank")]
    response = root.admin.post(f"/admin/auth/user/{doomed[0].pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    response = root.admin.post(
        "/admin/auth/user/", {"action": "delete_selected", "_selected_action": [doomed[1].pk], "post": "yes"}
    )
    assert response.status_code == 302
    assert not User.objects.filter(username__in=["gina", "hank"]).exists()
    deleted = events(action="operator.delete")
    assert [(e.actor, e.target_id, e.details["name"]) for e in deleted] == [
        ("root", str(doomed[0].pk), "gina"),
        ("root", str(doomed[1].pk), "hank"),
    ]


def test_a_token_is_issued_and_revoked_with_audit_events_that_never_hold_it(root, client):
    issued = operator_create(username="ivan", with_token=True)
    token = issued.token
    assert token is not None
    record = ApiToken.objects.get(user=issued.operator)
    assert (record.prefix, len(record.digest)) == (token[:8], 64)
    assert token not in repr(record.__dict__)
    listing = root.admin.get("/admin/operators/apitoken/")
    assert record.prefix in listing.content.decode()
    assert token not in listing.content.decode()
    assert root.admin.get("/admin/operators/apitoken/add/").status_code == 403
    response = root.admin.post(f"/admin/operators/apitoken/{record.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert client.get("/api/chats", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401
    created, revoked = only_event(action="token.create"), only_event(action="token.delete")
    assert (created.actor, created.target_id) == ("system", record.prefix)
    assert (revoked.actor, revoked.target_type, revoked.target_id) == ("root", "token", str(record.pk))
    for event in (created, revoked):
        assert token not in repr(event.__dict__)


def test_changing_a_group_in_the_admin_is_audited(root):
    auditors = Group.objects.get(name="auditors")
    permissions = list(auditors.permissions.values_list("pk", flat=True))
    response = root.admin.post(
        f"/admin/auth/group/{auditors.pk}/change/", {"name": "auditors-renamed", "permissions": permissions}
    )
    assert response.status_code == 302, response.content
    event = only_event(action="group.change")
    assert (event.actor, event.target_id, event.details["name"]) == ("root", str(auditors.pk), "auditors-renamed")


def test_all_of_it_forms_one_verifiable_chain(root, alice):
    chat = alice.new_chat()
    alice.send(chat["id"], "x", key=uuid.uuid4().hex)
    console_login(Client(), "alice", "wrong", **BROWSER)
    operator_create(username="judy", with_token=True)
    assert {"auth.login", "auth.login_failed", "chat.create", "message.send", "token.create"} <= {
        e.action for e in events()
    }
    assert chain_verify().ok
