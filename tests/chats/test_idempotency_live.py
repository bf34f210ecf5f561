"""Exactly-once sends against real gunicorn workers and instances, with each backend."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests
from django.conf import settings

from chats.models import Message
from sofiia.settings import IDEMPOTENCY_CACHE_PREFIX
from tests.personas import make_persona

pytestmark = pytest.mark.live

CONCURRENT_SENDS = 50


def fire_together(url: str, *, token: str, key: str, text: str, count: int) -> list[requests.Response]:
    barrier = threading.Barrier(count)

    def send(_: int) -> requests.Response:
        barrier.wait()
        return requests.post(
            url,
            json={"text": text},
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
            timeout=60,
        )

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(send, range(count)))


class RedisFlusher:
    """Deletes every idempotency record in Redis, over and over, while a burst runs."""

    def __init__(self) -> None:
        self.client = redis.Redis.from_url(settings.SOFIIA_REDIS_URL)
        self.stop = threading.Event()
        self.flushes = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            keys = list(self.client.scan_iter(f"{IDEMPOTENCY_CACHE_PREFIX}:*"))
            if keys:
                self.client.delete(*keys)
            self.flushes += 1
            self.stop.wait(0.005)  # wall time: flushes paced through the live burst, until told to stop

    def __enter__(self) -> RedisFlusher:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def assert_exactly_once(responses: list[requests.Response], *, text: str, node_calls: int) -> None:
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {201, 409}, statuses
    created = [r for r in responses if r.status_code == 201]
    assert created, statuses
    originals = [r for r in created if r.headers.get("Idempotent-Replayed") != "true"]
    assert len(originals) <= 1
    assert len({r.content for r in created}) == 1, "replays must be identical to the original"
    for conflict in (r for r in responses if r.status_code == 409):
        assert conflict.json()["error"] == "idempotency_key_in_flight"
        assert conflict.headers["Retry-After"]
    assert Message.objects.filter(role="operator", text=text).count() == 1
    assert Message.objects.filter(role="agent", reply_to__text=text).count() == 1
    assert node_calls == 1


@pytest.mark.parametrize("backend", ["inmemory", "redis"])
@pytest.mark.parametrize("flush_cache", [False, True], ids=["cache-kept", "cache-flushed"])
def test_fifty_concurrent_identical_sends_make_one_message(live_console, nodes, backend, flush_cache):
    alice = make_persona("alice")
    console = live_console(
        workers=2,
        SOFIIA_IDEMPOTENCY_BACKEND=backend,
        SOFIIA_RATE_LIMIT_BACKEND=backend,
        SOFIIA_RATE_LIMIT_CHAT="1000/60",
    )
    chat = (
        console.session(alice.token)
        .post(f"{console.base}/api/chats", json={"title": "burst", "agent": "slow0.3", "node": "NODA1"}, timeout=30)
        .json()
    )
    url, text = f"{console.base}/api/chats/{chat['id']}/send", f"burst {uuid.uuid4().hex}"
    key = uuid.uuid4().hex
    if flush_cache and backend == "redis":
        with RedisFlusher() as flusher:
            responses = fire_together(url, token=alice.token, key=key, text=text, count=CONCURRENT_SENDS)
        assert flusher.flushes > 0
    else:
        responses = fire_together(url, token=alice.token, key=key, text=text, count=CONCURRENT_SENDS)
    if flush_cache and backend == "inmemory":
        # In-memory caches live in the workers: a restart is what flushes them.
        console.stop()
        console.start()
        responses += fire_together(url, token=alice.token, key=key, text=text, count=10)
    assert_exactly_once(responses, text=text, node_calls=len(nodes["NODA1"].calls_with(text)))
    settled = requests.post(
        url, json={"text": text}, headers={"Authorization": f"Bearer {alice.token}", "Idempotency-Key": key}, timeout=30
    )
    assert settled.status_code == 201
    assert settled.headers["Idempotent-Replayed"] == "true"


@pytest.mark.redis
def test_a_send_made_on_one_instance_replays_on_another(live_console, nodes):
    alice = make_persona("alice")
    shared = {"SOFIIA_IDEMPOTENCY_BACKEND": "redis", "SOFIIA_RATE_LIMIT_BACKEND": "redis"}
    a, b = live_console(workers=2, **shared), live_console(workers=2, **shared)
    chat = a.session(alice.token).post(f"{a.base}/api/chats", json={"title": "ab", "agent": "echo"}, timeout=30).json()
    headers = {"Authorization": f"Bearer {alice.token}", "Idempotency-Key": uuid.uuid4().hex}
    on_a = requests.post(
        f"{a.base}/api/chats/{chat['id']}/send", json={"text": "A then B"}, headers=headers, timeout=30
    )
    on_b = requests.post(
        f"{b.base}/api/chats/{chat['id']}/send", json={"text": "A then B"}, headers=headers, timeout=30
    )
    assert on_a.status_code == on_b.status_code == 201
    assert "Idempotent-Replayed" not in on_a.headers
    assert on_b.headers["Idempotent-Replayed"] == "true"
    assert on_b.content == on_a.content
    assert Message.objects.filter(chat_id=chat["id"]).count() == 2
    assert len(nodes["NODA1"].calls_with("A then B")) == 1
