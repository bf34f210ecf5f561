from __future__ import annotations

import pytest

from audit.models import AuditEvent
from chats.models import Chat


def test_an_operator_creates_a_chat_on_a_chosen_node(alice):
    response = alice.api.post("/api/chats", {"title": "Release", "agent": "planner", "node": "NODA2"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {
        "id", "title", "agent", "node", "created_at",
        "system_prompt", "model", "temperature", "max_tokens", "context_turns", "archived",
    }  # fmt: skip
    assert (body["title"], body["agent"], body["node"]) == ("Release", "planner", "NODA2")
    assert (body["system_prompt"], body["model"], body["temperature"], body["max_tokens"]) == ("", None, None, None)
    assert (body["context_turns"], body["archived"]) == (10, False)
    assert body["created_at"].endswith("Z")
    assert len(body["created_at"]) == len("2026-01-01T00:00:00.000000Z")
    chat = Chat.objects.get(pk=body["id"])
    assert chat.owner == alice.user
    event = AuditEvent.objects.get(action="chat.create")
    assert (event.actor, event.chat_id, event.outcome) == ("alice", chat.pk, "success")
    assert event.details == {"title": "Release", "agent": "planner", "node": "NODA2"}


def test_a_chat_without_a_node_goes_to_the_default_node(alice, settings):
    settings.SOFIIA_DEFAULT_NODE = "NODA2"
    assert alice.new_chat(node=None)["node"] == "NODA2"


def test_an_unknown_node_is_refused(alice):
    response = alice.api.post("/api/chats", {"title": "x", "agent": "echo", "node": "NODA9"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "unknown_node"
    assert not Chat.objects.exists()
    assert not AuditEvent.objects.filter(action="chat.create").exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "", "agent": "echo"}, "title"),
        ({"title": "x" * 201, "agent": "echo"}, "title"),
        ({"title": 12, "agent": "echo"}, "title"),
        ({"title": None, "agent": "echo"}, "title"),
        ({"agent": "echo"}, "title"),
        ({"title": "x"}, "agent"),
        ({"title": "x", "agent": ""}, "agent"),
        ({"title": "x", "agent": "bad agent!"}, "agent"),
        ({"title": "x", "agent": "a" * 65}, "agent"),
        ({"title": "x", "agent": ["echo"]}, "agent"),
        ({"title": "x", "agent": "echo", "node": ""}, "node"),
        ({"title": "x", "agent": "echo", "node": 7}, "node"),
        ({"title": "x\x00y", "agent": "echo"}, "title"),
    ],
)
def test_bad_chat_input_is_a_400_naming_the_field(alice, body, field):
    response = alice.api.post("/api/chats", body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()
    assert error["error"] == "invalid_input"
    assert field in error["fields"]
    assert not Chat.objects.exists()


@pytest.mark.parametrize("payload", [b"[]", b'"text"', b"null", b"{not json", b"\xff\xfe"])
def test_a_chat_body_that_is_not_a_json_object_is_a_400(alice, payload):
    response = alice.api.post("/api/chats", payload, content_type="application/json")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    assert isinstance(response.json()["error"], str)


def test_a_non_json_content_type_is_a_415(alice):
    response = alice.api.post("/api/chats", "title=x&agent=echo", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"


def test_chats_are_listed_newest_first_and_read_one_by_one(alice):
    first = alice.new_chat(title="first")
    second = alice.new_chat(title="second")
    listing = alice.api.get("/api/chats").json()
    assert [c["id"] for c in listing["items"]] == [second["id"], first["id"]]
    assert listing["next_cursor"] is None
    assert alice.api.get(f"/api/chats/{first['id']}").json() == first


def test_an_operator_never_sees_another_operators_chat(alice, bob):
    chat = alice.new_chat(title="private")
    for path in (f"/api/chats/{chat['id']}", f"/api/chats/{chat['id']}/messages"):
        response = bob.api.get(path)
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"
    assert bob.api.get("/api/chats").json()["items"] == []


def test_a_missing_chat_and_a_huge_id_are_404(alice):
    assert alice.api.get("/api/chats/424242").json()["error"] == "not_found"
    response = alice.api.get("/api/chats/99999999999999999999999999")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/api/chats"), ("post", "/api/chats"), ("get", "/api/chats/1"), ("get", "/api/chats/1/messages"),
     ("post", "/api/chats/1/send"), ("get", "/api/nodes")],
)  # fmt: skip
def test_the_api_needs_an_operator(anonymous, method, path):
    response = getattr(anonymous, method)(path)
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"
    anonymous.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    response = getattr(anonymous, method)(path)
    assert response.status_code == 401
    assert response.json()["error"] == "authentication_failed"


def test_an_inactive_operators_token_is_refused(alice):
    alice.user.is_active = False
    alice.user.save()
    assert alice.api.get("/api/chats").status_code == 401


def test_the_chat_list_pages_by_cursor(alice):
    ids = [alice.new_chat(title=f"c{i}")["id"] for i in range(7)]
    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = alice.api.get("/api/chats", params).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))


def test_a_cursor_of_one_operator_is_refused_for_another(alice, bob):
    for i in range(3):
        alice.new_chat(title=f"c{i}")
    cursor = alice.api.get("/api/chats", {"limit": 1}).json()["next_cursor"]
    bob.new_chat()
    response = bob.api.get("/api/chats", {"cursor": cursor})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_cursor"
