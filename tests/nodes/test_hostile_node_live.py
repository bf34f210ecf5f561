"""Hostile nodes against the production server: gunicorn's gevent workers, where the
background refresh of node statuses runs as greenlets."""

from __future__ import annotations

import time
import uuid

from audit.models import AuditEvent
from chats.models import Message
from tests.nodes.fakes import json_200, trickle
from tests.personas import make_persona

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 50\r\nConnection: close\r\n\r\n"


def test_under_gevent_workers_a_trickling_node_slows_no_page_and_a_hostile_answer_fails_the_send(
    live_console, fake_node
):
    def answer(request):
        if request.path == "/health":
            return trickle(HEAD, b'{"status": "ok", "pad": "' + b"x" * 22 + b'"}')
        return json_200({"response": "a\u0000b"})

    fake_node(answer, drip_seconds=0.5)
    alice = make_persona("alice")
    console = live_console(workers=1)
    http = console.session(alice.token)
    chat = http.post(f"{console.base}/api/chats", json={"title": "t", "agent": "echo", "node": "EVIL"}).json()
    for _ in range(3):
        # About wall time: the trickling /health (25 s to answer) must hold no request.
        started = time.monotonic()
        nodes = {n["name"]: n for n in http.get(f"{console.base}/api/nodes", timeout=30).json()}
        assert time.monotonic() - started < 2
        assert nodes["EVIL"]["status"] == "down"
        assert nodes["NODA1"]["status"] == "up"
    sent = http.post(
        f"{console.base}/api/chats/{chat['id']}/send",
        json={"text": "hello"},
        headers={"Idempotency-Key": uuid.uuid4().hex},
        timeout=30,
    )
    assert (sent.status_code, sent.json()["error"]) == (502, "node_unavailable")
    assert sent.json()["operator_message"]["status"] == "failed"
    message = Message.objects.get()
    assert (message.status, message.failure) == ("failed", "node_bad_response")
    event = AuditEvent.objects.get(action="message.send")
    assert (event.outcome, event.details["reason"]) == ("failed", "unstorable_text")
