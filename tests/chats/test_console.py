from __future__ import annotations

import re

import pytest
from django.test import Client

from chats.models import Chat, Message


@pytest.fixture
def console(alice):
    client = Client()
    assert client.login(username="alice", password=alice.password)
    return client


def test_the_console_needs_a_login(db):
    response = Client().get("/console/")
    assert response.status_code == 302
    assert response["Location"].startswith("/console/login/")


def test_an_operator_logs_in_through_the_form(alice):
    client = Client(enforce_csrf_checks=True)
    page = client.get("/console/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    response = client.post("/console/login/", {"username": "alice", "password": alice.password,
                                                "csrfmiddlewaretoken": token})  # fmt: skip
    assert response.status_code == 302
    assert client.get("/console/").status_code == 200


def test_a_wrong_password_shows_the_form_again(alice):
    response = Client().post("/console/login/", {"username": "alice", "password": "wrong"})
    assert response.status_code == 200
    assert b"Log in" in response.content


def test_an_operator_creates_a_chat_and_sends_from_the_console(console, nodes):
    response = console.post("/console/", {"title": "Ops", "agent": "echo", "node": "NODA2"})
    chat = Chat.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/console/chats/{chat.pk}/"
    page = console.get(response["Location"]).content.decode()
    key = re.search(r'name="idempotency_key" value="([0-9a-f]+)"', page).group(1)
    for _ in range(2):  # a double submit delivers once
        console.post(f"/console/chats/{chat.pk}/send", {"text": "hello console", "idempotency_key": key})
    assert Message.objects.filter(role="operator").count() == 1
    assert len(nodes["NODA2"].calls_with("hello console")) == 1
    page = console.get(f"/console/chats/{chat.pk}/").content.decode()
    assert "NODA2/echo: hello console" in page


def test_a_failed_send_offers_a_retry_of_the_same_message(console):
    console.post("/console/", {"title": "Ops", "agent": "fail500", "node": "NODA1"})
    chat = Chat.objects.get()
    response = console.post(f"/console/chats/{chat.pk}/send", {"text": "x", "idempotency_key": "k1"}, follow=True)
    page = response.content.decode()
    assert "did not deliver" in page
    assert "Retry delivery" in page
    assert Message.objects.get().status == "failed"


def test_a_bad_chat_form_is_shown_with_errors(console):
    response = console.post("/console/", {"title": "", "agent": "bad agent", "node": "NODA1"})
    assert response.status_code == 200
    assert not Chat.objects.exists()


def test_another_operators_chat_is_404_in_the_console(alice, bob):
    chat = alice.new_chat()
    client = Client()
    client.login(username="bob", password=bob.password)
    assert client.get(f"/console/chats/{chat['id']}/").status_code == 404
    assert client.post(f"/console/chats/{chat['id']}/send", {"text": "x", "idempotency_key": "k"}).status_code == 404
    assert not Message.objects.exists()


def test_logout_needs_a_post(console):
    response = console.post("/console/logout/")
    assert response.status_code == 302
    assert console.get("/console/").status_code == 302
