"""Counter values on /metrics are exact across gunicorn workers (prometheus multiprocess mode)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import uuid

import pytest
import requests

from tests.live import LiveConsole
from tests.personas import make_persona
from tests.test_metrics import sample
from tests.waiting import wait_until

pytestmark = pytest.mark.live


class Operator:
    """Sends over fresh connections, so the requests spread over the workers."""

    def __init__(self, console: LiveConsole, token: str) -> None:
        self.console = console
        self.headers = {"Authorization": f"Bearer {token}", "Connection": "close"}

    def chat(self, agent: str, node: str) -> int:
        body = {"title": agent, "agent": agent, "node": node}
        response = requests.post(f"{self.console.base}/api/chats", json=body, headers=self.headers, timeout=30)
        assert response.status_code == 201
        return int(response.json()["id"])

    def send(self, chat_id: int, text: str, key: str | None = None) -> requests.Response:
        headers = {**self.headers, "Idempotency-Key": key or uuid.uuid4().hex}
        url = f"{self.console.base}/api/chats/{chat_id}/send"
        return requests.post(url, json={"text": text}, headers=headers, timeout=30)


def scrape(console: LiveConsole) -> str:
    return requests.get(f"{console.base}/metrics", timeout=10).text


def worker_pids(console: LiveConsole) -> list[int]:
    assert console.proc is not None
    out = subprocess.run(["pgrep", "-P", str(console.proc.pid)], capture_output=True, text=True, check=False)
    return [int(pid) for pid in out.stdout.split()]


@pytest.mark.redis
def test_counters_are_exact_after_a_known_sequence_on_four_workers(live_console, nodes):
    alice = make_persona("alice")
    # Redis backends: rate limits and replays are then exact across the four workers too.
    console = live_console(
        workers=4,
        SOFIIA_IDEMPOTENCY_BACKEND="redis",
        SOFIIA_RATE_LIMIT_BACKEND="redis",
        SOFIIA_RATE_LIMIT_CHAT="8/60",
        SOFIIA_RATE_LIMIT_OPERATOR="1000/60",
    )
    assert len(worker_pids(console)) == 4
    operator = Operator(console, alice.token)
    echo, failing, slow = (
        operator.chat("echo", "NODA1"),
        operator.chat("fail500", "NODA2"),
        operator.chat("slow1", "NODA1"),
    )

    sent = [operator.send(echo, f"m{i}", key=f"k{i}") for i in range(10)]
    assert [r.status_code for r in sent] == [201] * 8 + [429] * 2
    for i in range(3):
        assert operator.send(echo, f"m{i}", key=f"k{i}").headers["Idempotent-Replayed"] == "true"
    for i in range(2):
        assert operator.send(echo, "another body", key=f"k{i}").status_code == 422
    assert [operator.send(failing, f"f{i}").status_code for i in range(2)] == [502, 502]
    first: dict[str, requests.Response] = {}
    thread = threading.Thread(target=lambda: first.setdefault("r", operator.send(slow, "slow", key="k-slow")))
    thread.start()
    # The first send is in flight once the node has it; the same key again is then a 409.
    wait_until(lambda: nodes["NODA1"].calls_with("slow"), 30, what="the first send to reach the node", interval=0.02)
    assert operator.send(slow, "slow", key="k-slow").status_code == 409
    thread.join()
    assert first["r"].status_code == 201

    text = scrape(console)
    expected = {
        ("sofiia_idempotency_requests_total", (("result", "miss"),)): 13,
        ("sofiia_idempotency_requests_total", (("result", "replay"),)): 3,
        ("sofiia_idempotency_requests_total", (("result", "mismatch"),)): 2,
        ("sofiia_idempotency_requests_total", (("result", "conflict"),)): 1,
        ("sofiia_ratelimit_requests_total", (("scope", "chat"), ("decision", "allowed"))): 11,
        ("sofiia_ratelimit_requests_total", (("scope", "operator"), ("decision", "allowed"))): 11,
        ("sofiia_ratelimit_requests_total", (("scope", "chat"), ("decision", "blocked"))): 2,
        ("sofiia_ratelimit_requests_total", (("scope", "operator"), ("decision", "blocked"))): 0,
        ("sofiia_infer_requests_total", (("node", "NODA1"), ("outcome", "ok"))): 9,
        ("sofiia_infer_requests_total", (("node", "NODA2"), ("outcome", "http_status"))): 2,
        ("sofiia_infer_duration_seconds_count", (("node", "NODA1"),)): 9,
        ("sofiia_audit_events_total", (("action", "chat.create"),)): 3,
        ("sofiia_audit_events_total", (("action", "message.send"),)): 11,
        ("sofiia_audit_events_total", (("action", "message.replay"),)): 3,
        ("sofiia_audit_events_total", (("action", "ratelimit.block"),)): 2,
        ("sofiia_send_duration_seconds_count", (("outcome", "delivered"),)): 9,
        ("sofiia_send_duration_seconds_count", (("outcome", "failed"),)): 2,
        ("django_http_responses_total_by_status_total", (("status", "201"),)): 3 + 8 + 3 + 1,
        ("django_http_responses_total_by_status_total", (("status", "429"),)): 2,
        ("django_http_responses_total_by_status_total", (("status", "422"),)): 2,
        ("django_http_responses_total_by_status_total", (("status", "502"),)): 2,
        ("django_http_responses_total_by_status_total", (("status", "409"),)): 1,
    }
    actual = {(name, labels): sample(text, name, **dict(labels)) for name, labels in expected}
    assert actual == expected

    # A worker that dies keeps its counts: its samples stay in the shared directory.
    victim = worker_pids(console)[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(
        lambda: victim not in worker_pids(console) and len(worker_pids(console)) == 4,
        30,
        what="gunicorn to replace the worker",
        interval=0.2,
    )
    after = scrape(console)
    assert {(name, labels): sample(after, name, **dict(labels)) for name, labels in expected} == expected
