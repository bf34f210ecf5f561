"""A node is an untrusted upstream: whatever it answers, an operator gets a clear node failure
(502 ``node_unavailable``, the message ``failed`` with a ``failure`` code, the send audited),
and no node can slow or break a page, ``/api/nodes`` or the process."""

from __future__ import annotations

import time
import uuid

import pytest
from django.test import Client

from audit.models import AuditEvent
from chats.models import Message
from nodes.infer import NodeUnavailable, infer
from nodes.registry import node_probe
from tests.nodes.fakes import FakeNode, http_200, http_answer, json_200, streamed_200, trickle

MiB = 1024 * 1024
DEEP = b'{"response": "x", "extra": ' + b"[" * 60000 + b"]" * 60000 + b"}"

# (what the node answers to an infer call, the failure the operator's message keeps, the kind)
HOSTILE_ANSWERS = {
    "3.9 MB": (json_200({"response": "x" * (39 * MiB // 10)}), "node_too_large", "too_large"),
    "NUL in response": (json_200({"response": "a\u0000b"}), "node_bad_response", "unstorable_text"),
    "lone surrogate in response": (json_200({"response": "a\ud800b"}), "node_bad_response", "unstorable_text"),
    "deep JSON": (http_200(DEEP), "node_bad_response", "too_deep"),
    "model with NUL": (json_200({"response": "ok", "model": "m\u0000"}), "node_bad_response", "unstorable_text"),
    "3 MB model": (json_200({"response": "ok", "model": "m" * 3 * MiB}), "node_too_large", "too_large"),
    "300-character model": (json_200({"response": "ok", "model": "m" * 300}), "node_bad_response", "out_of_range"),
    "300-character backend": (
        json_200({"response": "ok", "backend": "b" * 300}),
        "node_bad_response",
        "out_of_range",
    ),
    "surrogate in backend": (json_200({"response": "ok", "backend": "\udfff"}), "node_bad_response", "unstorable_text"),
    "tokens_used '12'": (json_200({"response": "ok", "tokens_used": "12"}), "node_bad_response", "bad_response"),
    "tokens_used -1": (json_200({"response": "ok", "tokens_used": -1}), "node_bad_response", "out_of_range"),
    "tokens_used 1e30": (http_200(b'{"response": "ok", "tokens_used": 1e30}'), "node_bad_response", "bad_response"),
    "tokens_used 10**9 + 1": (
        json_200({"response": "ok", "tokens_used": 10**9 + 1}),
        "node_bad_response",
        "out_of_range",
    ),
    "tokens_used true": (json_200({"response": "ok", "tokens_used": True}), "node_bad_response", "bad_response"),
    "tokens_used NaN": (http_200(b'{"response": "ok", "tokens_used": NaN}'), "node_bad_response", "not_json"),
    "UTF-16 JSON": (http_200('{"response": "ok"}'.encode("utf-16")), "node_bad_response", "not_utf8"),
    "gzip body": (
        http_answer(200, b"\x1f\x8b", headers="Content-Encoding: gzip\r\n"),
        "node_bad_response",
        "bad_response",
    ),
}


@pytest.mark.parametrize("case", HOSTILE_ANSWERS)
def test_a_hostile_infer_answer_is_a_node_failure_of_its_own_kind(fake_node, case):
    payload, failure, kind = HOSTILE_ANSWERS[case]
    fake_node(lambda request: payload)
    with pytest.raises(NodeUnavailable) as error:
        infer(node="EVIL", agent="echo", body={"prompt": "x"}, timeout=10)
    assert (error.value.code, error.value.failure, error.value.kind) == ("node_unavailable", failure, kind)


def test_a_redirect_is_never_followed(fake_node):
    elsewhere = FakeNode(lambda request: json_200({"response": "an answer from elsewhere"}))
    try:
        location = f"Location: {elsewhere.url}/v1/agents/echo/infer\r\n"
        fake_node(lambda request: http_answer(307, b"", headers=location))
        with pytest.raises(NodeUnavailable) as error:
            infer(node="EVIL", agent="echo", body={"prompt": "the operator's secret"}, timeout=5)
        assert (error.value.failure, error.value.kind) == ("node_redirect", "redirect")
        assert elsewhere.requests == []
    finally:
        elsewhere.close()


@pytest.mark.parametrize("case", ["3.9 MB", "NUL in response", "deep JSON", "model with NUL", "3 MB model",
                                  "tokens_used -1", "gzip body"])  # fmt: skip
def test_a_send_to_a_hostile_node_fails_cleanly_and_is_audited(alice, fake_node, case):
    payload, failure, kind = HOSTILE_ANSWERS[case]
    fake_node(lambda request: payload)
    chat = alice.new_chat(node="EVIL")
    response = alice.send(chat["id"], "hello", key=uuid.uuid4().hex)
    assert response.status_code == 502, response.content
    assert response.json()["error"] == "node_unavailable"
    assert response.json()["operator_message"]["status"] == "failed"
    message = Message.objects.get()
    assert (message.status, message.failure, message.text) == ("failed", failure, "hello")
    event = AuditEvent.objects.get(action="message.send")
    assert (event.actor, event.outcome, event.target_id) == ("alice", "failed", str(message.pk))
    assert (event.details["error"], event.details["reason"]) == ("node_unavailable", kind)


def test_a_send_redirected_elsewhere_fails_and_sends_nothing_elsewhere(alice, fake_node):
    elsewhere = FakeNode(lambda request: json_200({"response": "an answer from elsewhere"}))
    try:
        location = f"Location: {elsewhere.url}/v1/agents/echo/infer\r\n"
        fake_node(lambda request: http_answer(307, b"", headers=location))
        chat = alice.new_chat(node="EVIL")
        response = alice.send(chat["id"], "the operator's secret", key=uuid.uuid4().hex)
        assert (response.status_code, response.json()["error"]) == (502, "node_unavailable")
        assert Message.objects.get().failure == "node_redirect"
        assert AuditEvent.objects.get(action="message.send").details["reason"] == "redirect"
        assert elsewhere.requests == []
    finally:
        elsewhere.close()


def health_or(answer: bytes):
    """A node whose /health answers ``answer`` and which answers everything else as a node should."""

    def respond(request):
        if request.path == "/health":
            return answer
        if request.path == "/v1/models":
            return json_200({"models": []})
        return json_200({"response": "fine"})

    return respond


@pytest.fixture
def console(alice):
    client = Client()
    assert client.login(username="alice", password=alice.password)
    return client


def test_a_health_answer_nested_too_deep_leaves_pages_and_the_api_working(alice, console, fake_node):
    fake_node(health_or(http_200(b"[" * 60000)))
    chat = alice.new_chat(node="EVIL")
    nodes = alice.api.get("/api/nodes")
    assert nodes.status_code == 200
    assert "EVIL" in {n["name"] for n in nodes.json()}
    assert console.get("/console/").status_code == 200
    assert console.get(f"/console/chats/{chat['id']}/").status_code == 200


def test_a_trickling_health_answer_slows_no_page(alice, console, fake_node):
    # About wall time: a /health sending a byte every 0.5 s held every page for 25 s. The bound
    # is generous (the pages take milliseconds); it only has to tell 25 s from "not waiting".
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 50\r\nConnection: close\r\n\r\n"
    fake_node(lambda request: trickle(head, b'{"status": "ok", "pad": "' + b"x" * 22 + b'"}'), drip_seconds=0.5)
    chat = alice.new_chat(node="EVIL")
    for path, client in [("/api/nodes", alice.api), ("/console/", console), (f"/console/chats/{chat['id']}/", console),
                         ("/api/nodes", alice.api)]:  # fmt: skip
        started = time.monotonic()
        assert client.get(path).status_code == 200
        assert time.monotonic() - started < 2, path


@pytest.mark.parametrize("declared", [True, False], ids=["with Content-Length", "without Content-Length"])
def test_a_huge_health_answer_is_read_no_further_than_the_cap(fake_node, declared):
    node = fake_node(lambda request: streamed_200(200 * MiB, declared=declared))
    status = node_probe("EVIL")
    assert status.status == "down"
    assert node.wait_handled(1)
    # What the kernel buffers on both sides may hold is sent, the rest is never asked for.
    assert node.bytes_sent < 32 * MiB
