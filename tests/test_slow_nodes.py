"""Sends waiting on slow nodes, under gunicorn's gevent workers: hundreds in flight leave the
instance responsive and within its database pools, a hanging node cannot starve the others,
and SIGTERM lets the sends in flight finish. Behaviour with wide margins, not benchmarks
(bench/worker_model.py measures)."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from django.db import connection

from chats.models import Message
from tests.live import database_url
from tests.personas import make_persona
from tests.waiting import wait_until

pytestmark = [pytest.mark.live, pytest.mark.timeout(180)]


@dataclass
class Sent:
    key: str
    status: int
    body: dict[str, Any]
    finished: float


def send_many(base: str, token: str, chat_id: int, count: int, *, prefix: str) -> list[Sent]:
    """``count`` sends at once, one connection each, as many operators' browsers would."""

    def send(index: int) -> Sent:
        key = f"{prefix}-{index}-{uuid.uuid4().hex[:8]}"
        response = requests.post(
            f"{base}/api/chats/{chat_id}/send",
            json={"text": f"{prefix} {index}"},
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
            timeout=60,
        )
        return Sent(key=key, status=response.status_code, body=response.json(), finished=time.monotonic())

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(send, range(count)))


@dataclass
class Prober:
    """Asks ``paths`` one after another, over and over, and keeps the slowest answer of each."""

    base: str
    token: str
    paths: tuple[str, ...]
    slowest: dict[str, float] = field(default_factory=dict)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)

    @contextmanager
    def running(self) -> Iterator[Prober]:
        stop = threading.Event()

        def probe() -> None:
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {self.token}"
            while not stop.is_set():
                for path in self.paths:
                    started = time.monotonic()
                    status = session.get(self.base + path, timeout=30).status_code
                    elapsed = time.monotonic() - started
                    self.statuses[(path, status)] += 1
                    self.slowest[path] = max(self.slowest.get(path, 0.0), elapsed)
                stop.wait(0.1)  # wall time: probes paced through the burst, until told to stop

        thread = threading.Thread(target=probe, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join(timeout=60)


@contextmanager
def database_connections_watched(application_name: str) -> Iterator[list[int]]:
    """Samples how many PostgreSQL connections the instance holds (nothing to watch on SQLite)."""
    samples: list[int] = []
    if connection.vendor != "postgresql":
        yield samples
        return
    stop = threading.Event()
    import psycopg

    def watch() -> None:
        with psycopg.connect(database_url(), autocommit=True) as watcher:
            while not stop.is_set():
                row = watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [application_name]
                ).fetchone()
                samples.append(row[0] if row else 0)
                stop.wait(0.05)  # wall time: samples paced through the burst, until told to stop

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join(timeout=30)


def instance_database_url(name: str) -> str:
    url = database_url()
    return f"{url}?application_name={name}" if url.startswith("postgres") else url


def test_300_sends_to_a_5_second_agent_leave_the_instance_responsive_and_within_its_pools(live_console, nodes):
    alice = make_persona("alice")
    pool_max = 8
    console = live_console(
        workers=2,
        DATABASE_URL=instance_database_url("sofiia-live-300"),
        SOFIIA_DB_POOL_MAX=str(pool_max),
        SOFIIA_INFER_TIMEOUT="30",
    )
    http = console.session(alice.token)
    chat = http.post(f"{console.base}/api/chats", json={"title": "busy day", "agent": "slow5"}).json()
    prober = Prober(console.base, alice.token, ("/livez", "/readyz", "/api/chats"))

    with database_connections_watched("sofiia-live-300") as connections, prober.running():
        first = time.monotonic()
        sent = send_many(console.base, alice.token, chat["id"], 300, prefix="morning")

    assert Counter(s.status for s in sent) == {201: 300}
    assert max(s.finished for s in sent) - first < 15
    for path in prober.paths:
        assert prober.statuses[(path, 200)] >= 3, prober.statuses
        assert prober.slowest[path] < 1.0, (path, prober.slowest)
    if connection.vendor == "postgresql":
        assert connections, "the watcher saw no samples"
        assert max(connections) <= 2 * pool_max
    assert Message.objects.filter(chat_id=chat["id"], role="operator", status="delivered").count() == 300
    assert Message.objects.filter(chat_id=chat["id"], role="agent").count() == 300
    assert len(nodes["NODA1"].calls) == 300


def test_a_hanging_node_takes_its_own_slots_only(live_console, nodes):
    alice = make_persona("alice")
    console = live_console(workers=2, SOFIIA_NODE_MAX_INFLIGHT="100", SOFIIA_INFER_TIMEOUT="30")
    http = console.session(alice.token)
    hanging = http.post(f"{console.base}/api/chats", json={"title": "h", "agent": "slow5", "node": "NODA1"}).json()
    healthy = http.post(f"{console.base}/api/chats", json={"title": "ok", "agent": "echo", "node": "NODA2"}).json()

    with ThreadPoolExecutor(max_workers=1) as background:
        stuck = background.submit(send_many, console.base, alice.token, hanging["id"], 100, prefix="stuck")
        wait_until(lambda: len(nodes["NODA1"].calls) == 100, timeout=30, what="100 sends at NODA1")

        for index in range(10):
            started = time.monotonic()
            response = http.post(
                f"{console.base}/api/chats/{healthy['id']}/send",
                json={"text": f"fine {index}"},
                headers={"Idempotency-Key": uuid.uuid4().hex},
                timeout=30,
            )
            assert response.status_code == 201, response.text
            assert time.monotonic() - started < 1.0

        key = uuid.uuid4().hex
        started = time.monotonic()
        refused = http.post(
            f"{console.base}/api/chats/{hanging['id']}/send",
            json={"text": "one too many"},
            headers={"Idempotency-Key": key},
            timeout=30,
        )
        assert time.monotonic() - started < 1.0
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"] == "node_busy"
        assert refused.json()["operator_message"]["status"] == "failed"
        assert int(refused.headers["Retry-After"]) >= 1
        nodes_now = {n["name"]: n for n in http.get(f"{console.base}/api/nodes").json()}
        assert (nodes_now["NODA1"]["in_flight"], nodes_now["NODA2"]["in_flight"]) == (100, 0)

        assert Counter(s.status for s in stuck.result(timeout=60)) == {201: 100}

    retried = http.post(
        f"{console.base}/api/chats/{hanging['id']}/send",
        json={"text": "one too many"},
        headers={"Idempotency-Key": key},
        timeout=30,
    )
    assert retried.status_code == 201, retried.text
    assert retried.json()["operator_message"]["id"] == refused.json()["operator_message"]["id"]
    assert Message.objects.filter(chat_id=hanging["id"], role="operator").count() == 101
    assert len(nodes["NODA1"].calls_with("one too many")) == 1


def test_sigterm_lets_the_sends_in_flight_finish(live_console, nodes):
    alice = make_persona("alice")
    console = live_console(workers=2, SOFIIA_INFER_TIMEOUT="10")
    graceful_timeout = 10 + 15
    http = console.session(alice.token)
    chat = http.post(f"{console.base}/api/chats", json={"title": "deploy", "agent": "slow3"}).json()

    with ThreadPoolExecutor(max_workers=1) as background:
        in_flight = background.submit(send_many, console.base, alice.token, chat["id"], 100, prefix="deploy")
        wait_until(lambda: len(nodes["NODA1"].calls) == 100, timeout=30, what="100 sends at the node")
        assert console.proc is not None
        stopping = time.monotonic()
        os.kill(console.proc.pid, signal.SIGTERM)
        sent = in_flight.result(timeout=60)
        console.proc.wait(timeout=graceful_timeout + 10)
        exited_after = time.monotonic() - stopping

    assert exited_after < graceful_timeout
    for answer in sent:
        assert answer.status == 201 or (answer.status >= 500 and "error" in answer.body), answer
    operator_messages = Message.objects.filter(chat_id=chat["id"], role="operator")
    assert operator_messages.count() == 100
    assert sorted(operator_messages.values_list("idempotency_key", flat=True)) == sorted(s.key for s in sent)
    delivered = {s.key for s in sent if s.status == 201}
    for message in operator_messages:
        expected = "delivered" if message.idempotency_key in delivered else "failed"
        assert message.status == expected, message
    assert Message.objects.filter(chat_id=chat["id"], role="agent").count() == len(delivered)
    assert len(nodes["NODA1"].calls) == 100
    # Nothing was cut off: each send had its full answer.
    assert len(delivered) == 100
