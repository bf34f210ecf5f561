"""The console under gunicorn with several workers, over real HTTP, on the test database."""

from __future__ import annotations

import json
import uuid

import pytest
import requests

from chats.models import Message
from tests.personas import make_persona
from tests.test_metrics import sample

pytestmark = pytest.mark.live


def test_sends_through_gunicorn_reach_the_right_dev_router(live_console, nodes):
    alice = make_persona("alice")
    console = live_console(workers=2)
    http = console.session(alice.token)
    for node in ("NODA1", "NODA2"):
        chat = http.post(f"{console.base}/api/chats", json={"title": node, "agent": "echo", "node": node}).json()
        for i in range(3):
            response = http.post(
                f"{console.base}/api/chats/{chat['id']}/send",
                json={"text": f"{node}-{i}"},
                headers={"Idempotency-Key": uuid.uuid4().hex},
                timeout=30,
            )
            assert response.status_code == 201, response.text
            assert response.json()["reply"]["text"] == f"{node}/echo: {node}-{i}"
    assert sorted(c.text for c in nodes["NODA1"].calls) == ["NODA1-0", "NODA1-1", "NODA1-2"]
    assert sorted(c.text for c in nodes["NODA2"].calls) == ["NODA2-0", "NODA2-1", "NODA2-2"]
    assert Message.objects.count() == 12


def test_metrics_add_up_across_workers(live_console):
    alice = make_persona("alice")
    console = live_console(workers=3)
    http = console.session(alice.token)
    chat = http.post(f"{console.base}/api/chats", json={"title": "m", "agent": "echo", "node": "NODA1"}).json()
    for i in range(12):
        http.post(
            f"{console.base}/api/chats/{chat['id']}/send",
            json={"text": f"m{i}"},
            headers={"Idempotency-Key": uuid.uuid4().hex, "Connection": "close"},
            timeout=30,
        )
    text = requests.get(f"{console.base}/metrics", timeout=10).text
    assert sample(text, "sofiia_infer_requests_total", node="NODA1", outcome="ok") == 12
    assert sample(text, "sofiia_audit_events_total", action="message.send") == 12


def test_logs_are_json_lines_with_the_request_id(live_console):
    alice = make_persona("alice")
    # The test's client stands in for the proxy, whose X-Request-ID the console keeps.
    console = live_console(workers=1, SOFIIA_TRUSTED_PROXIES="127.0.0.1")
    http = console.session(alice.token)
    chat = http.post(f"{console.base}/api/chats", json={"title": "l", "agent": "echo"}).json()
    response = http.post(
        f"{console.base}/api/chats/{chat['id']}/send",
        json={"text": "log"},
        headers={"Idempotency-Key": "k-log", "X-Request-ID": "trace-42"},
        timeout=30,
    )
    assert response.headers["X-Request-ID"] == "trace-42"
    console.stop()
    lines = [json.loads(line) for line in console.log().splitlines() if line.startswith("{")]
    assert all({"ts", "level", "logger", "event", "request_id"} <= set(line) for line in lines)
    send = next(line for line in lines if line["event"] == "message.send")
    assert send["request_id"] == "trace-42"
    assert (send["operator"], send["chat_id"], send["node"], send["status"]) == ("alice", chat["id"], "NODA1",
                                                                                 "delivered")  # fmt: skip
    assert send["duration_ms"] >= 0
