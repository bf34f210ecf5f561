"""The audit trail in the Django admin: auditors view, filter, search and export it;
nobody, superusers included, can add, change or delete an event."""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import timedelta
from urllib.parse import urlencode

import pytest
import requests
from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone

from audit.chain import chain_verify
from audit.models import AuditEvent
from tests.audit.helpers import events, only_event
from tests.personas import make_admin, make_auditor, make_persona

CHANGELIST = "/admin/audit/auditevent/"
EXPORT = "/admin/audit/auditevent/export.csv"


@pytest.fixture
def activity(alice, bob, behind_proxy):
    alice_chat = alice.new_chat(title="a")
    bob_chat = bob.new_chat(title="b", agent="fail500")
    alice.send(alice_chat["id"], "hello", key=uuid.uuid4().hex, HTTP_X_REQUEST_ID="req-alice-send")
    bob.send(bob_chat["id"], "hello", key=uuid.uuid4().hex)
    return {"alice": alice_chat["id"], "bob": bob_chat["id"]}


def listed(client: Client, query: str = "") -> list[int]:
    response = client.get(f"{CHANGELIST}?{query}")
    assert response.status_code == 200, response.content[:500]
    return [event.id for event in response.context["cl"].result_list]


def exported(client: Client, query: str = "") -> tuple[list[str], list[dict[str, str]]]:
    response = client.get(f"{EXPORT}?{query}")
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="audit-events-')
    reader = csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()))
    return list(reader.fieldnames or []), list(reader)


def test_the_auditors_group_may_only_view_audit_events(db):
    group = Group.objects.get(name="auditors")
    assert [f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()] == ["audit.view_auditevent"]


def test_an_auditor_sees_only_the_audit_trail_and_usage_in_the_admin(auditor, activity):
    index = auditor.admin.get("/admin/")
    assert index.status_code == 200
    apps = index.context["app_list"]
    assert [(app["app_label"], [m["object_name"] for m in app["models"]]) for app in apps] == [
        ("audit", ["AuditEvent"]),
        ("chats", ["MessageUsage"]),
    ]
    written = {e.id for e in events()}
    ids = listed(auditor.admin)
    assert set(ids) == written
    assert ids == sorted(ids, reverse=True)
    read = events(action="audit.read")[-1]
    assert (read.actor, read.details["via"], read.details["view"]) == ("audrey", "admin", "list")


def test_an_auditor_opens_an_event_read_only(auditor, activity):
    event = events(action="message.send")[0]
    page = auditor.admin.get(f"{CHANGELIST}{event.id}/change/")
    assert page.status_code == 200
    content = page.content.decode()
    assert event.hash in content
    assert 'name="_save"' not in content
    read = events(action="audit.read")[-1]
    assert (read.details["view"], read.details["event_id"]) == ("detail", str(event.id))


def test_the_list_filters_by_action_actor_outcome_and_date(auditor, activity):
    sends = [e.id for e in events(action="message.send")]
    assert sorted(listed(auditor.admin, "action=message.send")) == sends
    assert set(listed(auditor.admin, "actor=bob")) == {e.id for e in events(actor="bob")}
    assert listed(auditor.admin, "outcome=failed") == [only_event(outcome="failed").id]
    assert listed(auditor.admin, "actor=nobody") == []
    # The date filter's own links: midnight today (aware) to midnight tomorrow.
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    tomorrow = today + timedelta(days=1)
    today_only = urlencode({"ts__gte": str(today), "ts__lt": str(tomorrow), "action": "chat.create"})
    assert set(listed(auditor.admin, today_only)) == {e.id for e in events(action="chat.create")}
    assert listed(auditor.admin, urlencode({"ts__gte": str(tomorrow)})) == []


def test_the_outcome_filter_offers_every_outcome_and_finds_rate_limit_blocks(auditor, alice, settings):
    from sofiia.lib.env import RatePolicy

    settings.SOFIIA_RATE_LIMIT_CHAT = RatePolicy(limit=1, window=3600)
    chat = alice.new_chat()
    assert alice.send(chat["id"], "one", key=uuid.uuid4().hex).status_code == 201
    assert alice.send(chat["id"], "two", key=uuid.uuid4().hex).status_code == 429
    page = auditor.admin.get(CHANGELIST)
    outcome_filter = next(spec for spec in page.context["cl"].filter_specs if spec.title == "outcome")
    offered = dict(outcome_filter.lookup_choices)
    assert set(offered) == {"success", "failure", "denied", "delivered", "failed", "timeout", "blocked"}
    assert listed(auditor.admin, "outcome=blocked") == [only_event(action="ratelimit.block").id]


def test_the_actor_filter_is_a_text_box_that_keeps_the_other_filters(auditor, activity):
    page = auditor.admin.get(f"{CHANGELIST}?action=chat.create&q=x").content.decode()
    assert 'name="actor"' in page
    assert '<input type="hidden" name="action" value="chat.create">' in page
    assert '<input type="hidden" name="q" value="x">' in page


def test_the_list_is_searched_by_chat_id_and_request_id(auditor, activity):
    in_bobs_chat = {e.id for e in events(chat_id=activity["bob"])}
    assert set(listed(auditor.admin, f"q={activity['bob']}")) == in_bobs_chat
    assert listed(auditor.admin, "q=req-alice-send") == [only_event(request_id="req-alice-send").id]
    assert listed(auditor.admin, "q=no-such-request") == []
    assert listed(auditor.admin, "q=99999999999999999999999") == []


@pytest.mark.parametrize(
    "query",
    ["", "action=message.send", "actor=alice", "outcome=failed", "q=req-alice-send", "action=chat.create&o=1",
     "ts__gte=2000-01-01+00%3A00%3A00%2B00%3A00&actor=bob&o=-3"],
)  # fmt: skip
def test_the_export_is_exactly_the_filtered_list(auditor, activity, query):
    header, rows = exported(auditor.admin, query)
    # Listed right after: the same selection (the export's own audit.read event included).
    shown = listed(auditor.admin, query)
    assert [int(row["id"]) for row in rows] == shown
    assert header == [
        "id", "ts", "actor", "action", "outcome", "target_type", "target_id", "chat_id",
        "request_id", "ip", "user_agent", "details", "prev_hash", "hash",
    ]  # fmt: skip
    stored = {e.id: e for e in AuditEvent.objects.filter(id__in=shown)}
    for row in rows:
        assert row["hash"] == stored[int(row["id"])].hash


def test_the_export_is_audited_with_its_query(auditor, activity):
    exported(auditor.admin, "action=message.send")
    read = events(action="audit.read")[-1]
    assert (read.actor, read.details["view"], read.details["query"]) == (
        "audrey", "export", {"action": ["message.send"]},
    )  # fmt: skip


def test_the_list_links_to_the_export_of_what_it_shows(auditor, activity):
    page = auditor.admin.get(f"{CHANGELIST}?action=chat.create&actor=bob").content.decode()
    assert f'href="{EXPORT}?action=chat.create&amp;actor=bob"' in page


def test_spreadsheet_formulas_in_exported_cells_are_defused(auditor):
    Client().post("/console/login/", {"username": '=HYPERLINK("http://x")', "password": "x"})
    _, rows = exported(auditor.admin, "action=auth.login_failed")
    assert rows[0]["actor"] == '\'=HYPERLINK("http://x")'


def test_an_export_with_bad_filters_is_a_400(auditor):
    assert auditor.admin.get(f"{EXPORT}?ts__gte=not-a-date").status_code == 400


# --- Nobody changes anything ------------------------------------------------------------


def _attempt_changes(client: Client, event: AuditEvent) -> list[int]:
    return [
        client.get(f"{CHANGELIST}add/").status_code,
        client.post(f"{CHANGELIST}add/", {"actor": "x", "action": "forged"}).status_code,
        client.post(f"{CHANGELIST}{event.id}/change/", {"actor": "mallory", "action": event.action}).status_code,
        client.get(f"{CHANGELIST}{event.id}/delete/").status_code,
        client.post(f"{CHANGELIST}{event.id}/delete/", {"post": "yes"}).status_code,
    ]


@pytest.mark.parametrize("make_staff", [make_auditor, make_admin], ids=["auditor", "superuser"])
def test_nobody_can_add_change_or_delete_an_audit_event(activity, make_staff):
    staff = make_staff("staffer")
    event = events(action="message.send")[0]
    before = dict(AuditEvent.objects.values_list("id", "hash"))
    assert _attempt_changes(staff.admin, event) == [403, 403, 403, 403, 403]
    staff.admin.post(CHANGELIST, {"action": "delete_selected", "_selected_action": [event.id], "post": "yes"})
    after = dict(AuditEvent.objects.values_list("id", "hash"))
    assert {event_id: after.get(event_id) for event_id in before} == before
    assert set(AuditEvent.objects.exclude(id__in=before).values_list("action", flat=True)) <= {"audit.read"}
    assert chain_verify().ok


def test_an_auditor_cannot_reach_operators_tokens_or_groups(auditor, alice):
    for url in ("/admin/auth/user/", "/admin/operators/apitoken/", "/admin/auth/group/",
                f"/admin/auth/user/{alice.user.pk}/change/", "/admin/chats/chat/"):  # fmt: skip
        assert auditor.admin.get(url).status_code == 403, url
    response = auditor.admin.post(f"/admin/auth/user/{alice.user.pk}/password/", {"password1": "x", "password2": "x"})
    assert response.status_code == 403
    assert not events(action="operator.change")


def test_staff_outside_the_auditors_group_cannot_see_the_trail(db):
    User.objects.create_user("sam", password="sam-pass-1234", is_staff=True)
    client = Client()
    assert client.login(username="sam", password="sam-pass-1234")
    assert client.get(CHANGELIST).status_code == 403
    assert client.get(EXPORT).status_code == 403
    assert not events(action="audit.read")


def test_without_a_login_the_export_leads_to_the_login_page(db):
    response = Client().get(EXPORT)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.live
def test_an_auditor_exports_through_gunicorn(live_console):
    from django.contrib.auth.hashers import make_password

    alice = make_persona("alice")
    for i in range(3):
        alice.api.post("/api/chats", {"title": f"c{i}", "agent": "echo"}, format="json")
    User.objects.create(username="audrey", password=make_password("audrey-pass-1234"), is_staff=True).groups.add(
        Group.objects.get(name="auditors")
    )
    console = live_console(workers=1)
    browser = requests.Session()
    page = browser.get(f"{console.base}/admin/login/", timeout=30).text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    login = browser.post(
        f"{console.base}/admin/login/",
        data={"username": "audrey", "password": "audrey-pass-1234", "csrfmiddlewaretoken": token, "next": "/admin/"},
        allow_redirects=False,
        timeout=30,
    )
    assert login.status_code == 302, login.text
    response = browser.get(f"{console.base}{EXPORT}", params={"action": "chat.create", "o": "1"}, timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["id"] for row in rows] == [str(e.id) for e in events(action="chat.create")]
    browser.close()
