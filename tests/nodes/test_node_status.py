"""Pages and ``/api/nodes`` read each node's last known status; probing it happens in the
background (nodes.registry)."""

from __future__ import annotations

import json
import threading

import pytest
from django.test import Client

from nodes import registry
from nodes.infer import infer
from nodes.metrics import NODE_TOKENS
from nodes.registry import node_statuses, node_statuses_refresh, node_statuses_settle
from tests.nodes.fakes import FakeNode, http_200, json_200


@pytest.fixture
def console(alice):
    client = Client()
    assert client.login(username="alice", password=alice.password)
    return client


class Switch:
    """A node's behaviour a test changes as it goes: ``up``, ``error``, or ``held`` (answers
    /health only once released)."""

    def __init__(self) -> None:
        self.mode = "up"
        self.release = threading.Event()
        self.node: FakeNode | None = None

    def __call__(self, request):
        if request.path == "/v1/models":
            return json_200({"models": [{"id": "evil-1", "backend": "x"}], "total": 1})
        if self.mode == "held":
            self.release.wait(30)
            return json_200({"status": "ok"})
        if self.mode == "error":
            return b"HTTP/1.1 503 Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        return json_200({"status": "ok", "agents": ["scout"]})


@pytest.fixture
def switch(fake_node):
    behaviour = Switch()
    behaviour.node = fake_node(behaviour)
    yield behaviour
    behaviour.release.set()


def evil(client) -> dict:
    return {n["name"]: n for n in client.get("/api/nodes").json()}["EVIL"]


def test_a_known_status_is_read_without_asking_the_node(alice, switch, fake_node):
    node_statuses_refresh()
    switch.mode = "error"
    assert evil(alice.api)["status"] == "up"
    assert node_statuses_settle()
    assert evil(alice.api)["status"] == "up"


def test_a_stale_status_is_refreshed_in_the_background_while_the_request_reads_the_last_known(
    alice, console, switch, clock, settings
):
    settings.SOFIIA_NODE_PROBE_TIMEOUT = 30
    node_statuses_refresh()
    switch.mode = "held"
    clock(settings.SOFIIA_NODE_STATUS_CACHE_SECONDS + 1)
    # The refresh this sets off is held by the node: the request does not wait for it.
    assert evil(alice.api)["status"] == "up"
    chat = alice.new_chat(node="EVIL")
    assert 'data-node="EVIL" data-status="up"' in console.get(f"/console/chats/{chat['id']}/").content.decode()
    switch.mode = "error"
    switch.release.set()
    assert node_statuses_settle()
    # The held probe answered 200 at last; the next stale look asks again and finds the error.
    assert evil(alice.api)["status"] == "up"
    clock(settings.SOFIIA_NODE_STATUS_CACHE_SECONDS + 1)
    evil(alice.api)
    assert node_statuses_settle()
    assert evil(alice.api) == {
        "name": "EVIL", "status": "down", "latency_ms": None, "models": [], "in_flight": 0, "max_in_flight": 500,
    }  # fmt: skip
    (status,) = [s for s in node_statuses() if s.name == "EVIL"]
    assert status.failure == "node_http_error"


def test_a_first_look_waits_a_bounded_time_then_shows_the_node_unknown(alice, console, switch, settings, monkeypatch):
    settings.SOFIIA_NODE_PROBE_TIMEOUT = 30
    monkeypatch.setattr(registry, "FIRST_STATUS_WAIT_SECONDS", 0.05)
    switch.mode = "held"
    chat = alice.new_chat(node="EVIL")
    assert evil(alice.api) | {"models": None} == {
        "name": "EVIL", "status": "down", "latency_ms": None, "models": None, "in_flight": 0, "max_in_flight": 500,
    }  # fmt: skip
    page = console.get(f"/console/chats/{chat['id']}/").content.decode()
    assert 'data-node="EVIL" data-status="unknown"' in page
    assert "Node EVIL is down" not in page
    switch.release.set()
    assert node_statuses_settle()
    known = evil(alice.api)
    assert (known["status"], known["models"]) == ("up", ["evil-1"])


def test_one_refresh_at_a_time_per_node(alice, switch, settings, monkeypatch):
    settings.SOFIIA_NODE_PROBE_TIMEOUT = 30
    monkeypatch.setattr(registry, "FIRST_STATUS_WAIT_SECONDS", 0.0)
    switch.mode = "held"
    for _ in range(5):
        assert evil(alice.api)["status"] == "down"
    switch.release.set()
    assert node_statuses_settle()
    assert len(switch.node.requests_to("/health")) == 1


def test_a_node_moved_to_another_address_is_not_known_there_yet(alice, switch, settings, dev_routers):
    node_statuses_refresh()
    settings.SOFIIA_NODES = {**settings.SOFIIA_NODES, "EVIL": dev_routers["NODA1"].url}
    (status,) = [s for s in node_statuses() if s.name == "EVIL"]
    assert status.agents == ("echo", "slow5")


@pytest.mark.parametrize(
    "body", [b"OK", b"[" * 60000, b'{"agents": "' + b"x" * 1000 + b'"}'], ids=["text", "deep JSON", "no list"]
)
def test_a_health_200_is_up_whatever_its_body_says(alice, fake_node, body):
    fake_node(lambda request: http_200(body, "text/plain") if request.path == "/health" else json_200({}))
    node_statuses_refresh()
    (status,) = [s for s in node_statuses() if s.name == "EVIL"]
    assert (status.status, status.agents, status.models, status.failure) == ("up", (), (), "")


def test_a_health_answer_over_its_cap_is_down(alice, fake_node):
    fake_node(lambda request: http_200(b'"' + b"x" * registry.HEALTH_MAX_BYTES + b'"'))
    node_statuses_refresh()
    (status,) = [s for s in node_statuses() if s.name == "EVIL"]
    assert (status.status, status.failure) == ("down", "node_too_large")


def test_node_models_are_bounded(alice, fake_node):
    listed = [{"id": f"model-{n}"} for n in range(5000)]
    listed[0:4] = [{"id": "nul\u0000"}, {"id": "m" * 201}, {"id": 7}, {"id": "\ud800"}]
    models = http_200(json.dumps({"models": listed, "total": 5000}).encode())
    fake_node(lambda request: models if request.path == "/v1/models" else json_200({"status": "ok"}))
    node_statuses_refresh()
    assert evil(alice.api)["models"] == [f"model-{n}" for n in range(4, 200)]


def tokens(node: str, model: str) -> float:
    return NODE_TOKENS.labels(node=node, model=model)._value.get()


def test_tokens_are_counted_by_node_and_listed_model(nodes):
    node_statuses_refresh()
    before_small, before_other = tokens("NODA1", "sofiia-small"), tokens("NODA1", "other")
    result = infer(node="NODA1", agent="echo", body={"prompt": "count these"})
    assert tokens("NODA1", "sofiia-small") == before_small + result.tokens_used
    unlisted = infer(node="NODA1", agent="echo", body={"prompt": "count these", "model": "gpt-unlisted"})
    assert unlisted.model == "gpt-unlisted"
    assert tokens("NODA1", "other") == before_other + unlisted.tokens_used
    assert tokens("NODA1", "gpt-unlisted") == 0


def test_a_model_is_other_until_the_node_is_known_to_list_it(nodes):
    before = tokens("NODA2", "other")
    result = infer(node="NODA2", agent="echo", body={"prompt": "early"})
    assert result.model == "sofiia-small"
    assert tokens("NODA2", "other") == before + result.tokens_used


def test_the_model_labels_of_a_node_stay_bounded(nodes, monkeypatch):
    node_statuses_refresh()
    # A node may list new models over time: past this many labels, its models are "other".
    monkeypatch.setattr(registry, "MAX_NODE_MODELS", 1)
    before = tokens("NODA2", "other")
    infer(node="NODA2", agent="echo", body={"prompt": "one", "model": "sofiia-small"})
    large = infer(node="NODA2", agent="echo", body={"prompt": "two", "model": "sofiia-large"})
    assert tokens("NODA2", "other") == before + large.tokens_used
