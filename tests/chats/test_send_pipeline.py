"""One pipeline for every send: the console's form and the JSON API spend quota, replay and
refuse alike, and ownership is checked before anything is spent."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from chats.models import Message
from ratelimit.services import ratelimit_peek
from sofiia.lib.env import RatePolicy
from tests.caches import clear_caches

pytestmark = pytest.mark.usefixtures("send_backend")


@pytest.fixture
def limits(settings: Any) -> None:
    settings.SOFIIA_RATE_LIMIT_CHAT = RatePolicy(limit=10, window=3600)
    settings.SOFIIA_RATE_LIMIT_OPERATOR = RatePolicy(limit=100, window=3600)


def remaining(persona: Any, chat_id: int) -> dict[str, int]:
    outcome = ratelimit_peek(operator=persona.user, chat_id=chat_id).outcome
    assert outcome is not None
    return {state.scope: state.remaining for state in outcome.states}


def logged_in(persona: Any) -> Client:
    browser = Client()
    assert browser.login(username=persona.username, password=persona.password)
    return browser


def test_a_console_double_submit_and_an_api_replay_spend_the_same_quota_none(alice, limits, nodes):
    in_console, over_api = alice.new_chat(title="console"), alice.new_chat(title="api")
    browser = logged_in(alice)
    form = {"text": "twice, please", "idempotency_key": "form-" + uuid.uuid4().hex}
    for _ in range(2):
        response = browser.post(f"/console/chats/{in_console['id']}/send", form)
        assert response.status_code == 302
    key = "api-" + uuid.uuid4().hex
    first, replay = (alice.send(over_api["id"], "twice, please", key=key) for _ in range(2))
    assert (first.status_code, replay.status_code, replay["Idempotent-Replayed"]) == (201, 201, "true")

    # Each surface spent one send on its chat and nothing on the repeat.
    assert remaining(alice, in_console["id"]) == {"chat": 9, "operator": 98}
    assert remaining(alice, over_api["id"]) == {"chat": 9, "operator": 98}
    for chat in (in_console, over_api):
        assert Message.objects.filter(chat_id=chat["id"], role="operator").count() == 1
    assert len(nodes["NODA1"].calls_with("twice, please")) == 2  # one per chat
    replays = AuditEvent.objects.filter(action="message.replay").order_by("id")
    assert [(event.chat_id, event.details["source"]) for event in replays] == [
        (in_console["id"], "cache"),
        (over_api["id"], "cache"),
    ]


def test_one_key_is_one_send_whichever_surface_repeats_it(alice, limits, nodes):
    chat = alice.new_chat()
    key = "shared-" + uuid.uuid4().hex
    browser = logged_in(alice)
    browser.post(f"/console/chats/{chat['id']}/send", {"text": "from the form", "idempotency_key": key})
    again = alice.send(chat["id"], "from the form", key=key)
    assert (again.status_code, again["Idempotent-Replayed"]) == (201, "true")
    other_text = alice.send(chat["id"], "something else", key=key)
    assert other_text.json()["error"] == "idempotency_key_reused"
    assert len(nodes["NODA1"].calls_with("from the form")) == 1
    assert remaining(alice, chat["id"])["chat"] == 9


def test_a_replay_the_cache_forgot_still_spends_nothing(alice, limits, nodes):
    chat = alice.new_chat()
    key = uuid.uuid4().hex
    assert alice.send(chat["id"], "remember", key=key).status_code == 201
    clear_caches()
    before = remaining(alice, chat["id"])
    again = alice.send(chat["id"], "remember", key=key)
    assert (again.status_code, again["Idempotent-Replayed"]) == (201, "true")
    assert remaining(alice, chat["id"]) == before
    assert AuditEvent.objects.get(action="message.replay").details["source"] == "database"


def test_another_operators_chat_is_a_404_that_spends_and_records_nothing(alice, bob, limits, nodes):
    chat = alice.new_chat()
    before = remaining(bob, chat["id"]), remaining(alice, chat["id"])
    for surface in ("api", "console"):
        if surface == "api":
            response = bob.send(chat["id"], "not yours", key=uuid.uuid4().hex)
            assert (response.status_code, response.json()["error"]) == (404, "not_found")
            assert "RateLimit-Policy" in response
        else:
            browser = logged_in(bob)
            form = {"text": "not yours", "idempotency_key": uuid.uuid4().hex}
            assert browser.post(f"/console/chats/{chat['id']}/send", form).status_code == 404
    assert (remaining(bob, chat["id"]), remaining(alice, chat["id"])) == before
    assert not AuditEvent.objects.filter(chat_id=chat["id"]).exclude(action="chat.create").exists()
    assert nodes["NODA1"].calls_with("not yours") == []


def test_the_console_and_the_api_refuse_bad_input_with_the_same_words(alice, limits):
    chat = alice.new_chat()
    api = alice.send(chat["id"], "x" * 16001, key=uuid.uuid4().hex).json()
    browser = logged_in(alice)
    page = browser.post(
        f"/console/chats/{chat['id']}/send", {"text": "x" * 16001, "idempotency_key": uuid.uuid4().hex}, follow=True
    )
    assert api["error"] == "invalid_input"
    assert api["detail"] in page.content.decode()
    assert not Message.objects.exists()


def _pending_left_by_a_dead_worker(persona: Any, chat_id: int, text: str, key: str) -> Message:
    """What a worker that died mid-send leaves: its pending message, and no cache claim."""
    return Message.objects.create(
        chat_id=chat_id, role="operator", text=text, node="NODA1", status="pending", operator=persona.user,
        idempotency_key=key, attempts=1, delivery_started_at=timezone.now(),
    )  # fmt: skip


def test_retries_of_a_send_still_in_flight_spend_no_quota(alice, settings, nodes):
    settings.SOFIIA_RATE_LIMIT_CHAT = RatePolicy(limit=2, window=3600)
    chat = alice.new_chat()
    key = uuid.uuid4().hex
    _pending_left_by_a_dead_worker(alice, chat["id"], "still going", key)
    before = remaining(alice, chat["id"])
    answers = [alice.send(chat["id"], "still going", key=key) for _ in range(5)]
    assert [(a.status_code, a.json()["error"]) for a in answers] == [(409, "idempotency_key_in_flight")] * 5
    assert all(int(a["Retry-After"]) >= 1 for a in answers)
    assert remaining(alice, chat["id"]) == before
    assert not AuditEvent.objects.filter(action="ratelimit.block").exists()
    assert nodes["NODA1"].calls_with("still going") == []


def test_a_console_retry_of_a_send_in_flight_spends_no_quota(alice, settings, nodes):
    settings.SOFIIA_RATE_LIMIT_CHAT = RatePolicy(limit=1, window=3600)
    chat = alice.new_chat()
    key = uuid.uuid4().hex
    _pending_left_by_a_dead_worker(alice, chat["id"], "in flight", key)
    browser = logged_in(alice)
    for _ in range(3):
        page = browser.post(
            f"/console/chats/{chat['id']}/send", {"text": "in flight", "idempotency_key": key}, follow=True
        )
        assert "still being delivered" in page.content.decode()
    assert remaining(alice, chat["id"])["chat"] == 1


def test_an_archived_chat_takes_no_sends_and_spends_nothing(alice, limits, nodes):
    chat = alice.new_chat()
    browser = logged_in(alice)
    assert browser.post(f"/console/chats/{chat['id']}/archive", {"archived": "on"}).status_code == 302
    before = remaining(alice, chat["id"])
    response = alice.send(chat["id"], "hello?", key=uuid.uuid4().hex)
    assert (response.status_code, response.json()["error"]) == (409, "chat_archived")
    page = browser.post(
        f"/console/chats/{chat['id']}/send", {"text": "hello?", "idempotency_key": uuid.uuid4().hex}, follow=True
    )
    assert response.json()["detail"] in page.content.decode()
    assert remaining(alice, chat["id"]) == before
    assert not Message.objects.filter(chat_id=chat["id"]).exists()
    assert nodes["NODA1"].calls_with("hello?") == []


def test_a_send_delivered_before_its_chat_was_archived_still_replays(alice, limits, nodes):
    chat = alice.new_chat()
    key = uuid.uuid4().hex
    first = alice.send(chat["id"], "before", key=key)
    browser = logged_in(alice)
    browser.post(f"/console/chats/{chat['id']}/archive", {"archived": "on"})
    clear_caches()
    again = alice.send(chat["id"], "before", key=key)
    assert (again.status_code, again["Idempotent-Replayed"]) == (201, "true")
    assert again.json() == first.json()


@pytest.mark.parametrize("blank", [" ", "\n\n", "\t \r\n "])
def test_a_blank_text_is_refused_before_anything_on_both_surfaces(alice, limits, nodes, blank):
    chat = alice.new_chat()
    before = remaining(alice, chat["id"])
    api = alice.send(chat["id"], blank, key=uuid.uuid4().hex)
    assert (api.status_code, api.json()["error"]) == (400, "invalid_input")
    assert api.json()["fields"] == {"text": ["This field may not be blank."]}
    browser = logged_in(alice)
    page = browser.post(
        f"/console/chats/{chat['id']}/send", {"text": blank, "idempotency_key": uuid.uuid4().hex}, follow=True
    )
    assert api.json()["detail"] in page.content.decode()
    assert remaining(alice, chat["id"]) == before
    assert not Message.objects.exists()
