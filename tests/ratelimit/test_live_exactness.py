"""Exactness of the limits against real gunicorn workers and instances."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from chats.models import Message
from tests.personas import make_persona

pytestmark = pytest.mark.live

LIMIT = 10


def burst(targets: list[tuple[str, int]], *, token: str, count: int) -> list[requests.Response]:
    """``count`` sends at once, each with its own key, spread round-robin over (base, chat) targets."""
    barrier = threading.Barrier(count)

    def send(index: int) -> requests.Response:
        base, chat_id = targets[index % len(targets)]
        barrier.wait()
        return requests.post(
            f"{base}/api/chats/{chat_id}/send",
            json={"text": f"burst {index}"},
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex},
            timeout=60,
        )

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(send, range(count)))


def new_chat(base: str, token: str) -> int:
    response = requests.post(
        f"{base}/api/chats",
        json={"title": "limits", "agent": "echo"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    return int(response.json()["id"])


def assert_exactly(responses: list[requests.Response], *, admitted: int, scope: str) -> None:
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == admitted, statuses
    assert statuses.count(429) == len(statuses) - admitted, statuses
    assert {r.json()["scope"] for r in responses if r.status_code == 429} == {scope}
    assert Message.objects.filter(role="operator").count() == admitted


@pytest.mark.parametrize(
    ("backend", "workers"), [("redis", 2), ("redis", 4), ("inmemory", 1)], ids=["redis-2", "redis-4", "inmemory-1"]
)
def test_the_chat_limit_is_exact_under_a_burst(live_console, backend, workers):
    alice = make_persona("alice")
    console = live_console(
        workers=workers,
        SOFIIA_RATE_LIMIT_BACKEND=backend,
        SOFIIA_IDEMPOTENCY_BACKEND=backend,
        SOFIIA_RATE_LIMIT_CHAT=f"{LIMIT}/60",
        SOFIIA_RATE_LIMIT_OPERATOR="1000/60",
    )
    chat_id = new_chat(console.base, alice.token)
    responses = burst([(console.base, chat_id)], token=alice.token, count=3 * LIMIT)
    assert_exactly(responses, admitted=LIMIT, scope="chat")


@pytest.mark.parametrize(("backend", "workers"), [("redis", 2), ("inmemory", 1)], ids=["redis-2", "inmemory-1"])
def test_the_operator_limit_is_exact_across_chats(live_console, backend, workers):
    alice = make_persona("alice")
    console = live_console(
        workers=workers,
        SOFIIA_RATE_LIMIT_BACKEND=backend,
        SOFIIA_IDEMPOTENCY_BACKEND=backend,
        SOFIIA_RATE_LIMIT_CHAT="1000/60",
        SOFIIA_RATE_LIMIT_OPERATOR=f"{LIMIT}/60",
    )
    chats = [(console.base, new_chat(console.base, alice.token)) for _ in range(4)]
    responses = burst(chats, token=alice.token, count=3 * LIMIT)
    assert_exactly(responses, admitted=LIMIT, scope="operator")


@pytest.mark.parametrize("scope", ["chat", "operator"])
@pytest.mark.redis
def test_two_instances_sharing_redis_admit_exactly_the_limit(live_console, scope):
    alice = make_persona("alice")
    limits = {"chat": f"{LIMIT}/60", "operator": "1000/60"} if scope == "chat" else {
        "chat": "1000/60", "operator": f"{LIMIT}/60"}  # fmt: skip
    env = {
        "SOFIIA_RATE_LIMIT_BACKEND": "redis",
        "SOFIIA_IDEMPOTENCY_BACKEND": "redis",
        "SOFIIA_RATE_LIMIT_CHAT": limits["chat"],
        "SOFIIA_RATE_LIMIT_OPERATOR": limits["operator"],
    }
    a, b = live_console(workers=2, **env), live_console(workers=2, **env)
    if scope == "chat":
        chat_id = new_chat(a.base, alice.token)
        targets = [(a.base, chat_id), (b.base, chat_id)]
    else:
        targets = [(a.base, new_chat(a.base, alice.token)), (b.base, new_chat(b.base, alice.token))]
    responses = burst(targets, token=alice.token, count=3 * LIMIT)
    assert_exactly(responses, admitted=LIMIT, scope=scope)
