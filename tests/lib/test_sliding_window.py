"""The sliding-window limiter on its own: exactness, windows, atomic multi-scope decisions."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.cache import caches
from django_redis import get_redis_connection

from sofiia.lib.sliding_window import InMemorySlidingWindow, RedisSlidingWindow, Window


@pytest.fixture
def limiter(send_backend):
    if send_backend == "redis":
        return RedisSlidingWindow(lambda: get_redis_connection("ratelimit"), caches["ratelimit"].make_key)
    return InMemorySlidingWindow()


def scope(limit: int, seconds: int = 60, name: str = "chat") -> Window:
    return Window(name, f"test:{name}:{uuid.uuid4().hex}", limit, seconds)


def test_a_full_quota_can_be_spent_at_once_and_no_more(limiter):
    window = scope(5)
    results = [limiter.acquire([window], consume=True) for _ in range(8)]
    assert [r.allowed for r in results] == [True] * 5 + [False] * 3
    assert [r.state("chat").remaining for r in results] == [4, 3, 2, 1, 0, 0, 0, 0]
    assert results[-1].blocked_scope == "chat"
    assert 59 < results[-1].state("chat").reset_after <= 60


def test_concurrent_requests_never_exceed_the_limit(limiter):
    window = scope(20)
    barrier = threading.Barrier(60)

    def hit(_: int) -> bool:
        barrier.wait()
        return limiter.acquire([window], consume=True).allowed

    with ThreadPoolExecutor(max_workers=60) as pool:
        allowed = sum(pool.map(hit, range(60)))
    assert allowed == 20


def test_the_window_slides(limiter, clock):
    window = scope(2, seconds=60)
    assert limiter.acquire([window], consume=True).allowed
    clock(30)
    assert limiter.acquire([window], consume=True).allowed
    assert not limiter.acquire([window], consume=True).allowed
    clock(31)  # the first request left the window, the second has not
    assert limiter.acquire([window], consume=True).allowed
    assert not limiter.acquire([window], consume=True).allowed


def test_a_blocked_request_spends_nothing_in_any_scope(limiter):
    chat, operator = scope(10, name="chat"), scope(2, name="operator")
    assert limiter.acquire([chat, operator], consume=True).allowed
    assert limiter.acquire([chat, operator], consume=True).allowed
    blocked = limiter.acquire([chat, operator], consume=True)
    assert not blocked.allowed
    assert blocked.blocked_scope == "operator"
    assert blocked.state("chat").count == 2  # the chat scope was not charged for the refusal


def test_the_first_exhausted_scope_is_reported(limiter):
    chat, operator = scope(1, name="chat"), scope(1, name="operator")
    limiter.acquire([chat, operator], consume=True)
    assert limiter.acquire([chat, operator], consume=True).blocked_scope == "chat"


def test_peeking_spends_nothing(limiter):
    window = scope(1)
    for _ in range(3):
        peek = limiter.acquire([window], consume=False)
        assert peek.allowed
        assert peek.state("chat").remaining == 1
        assert peek.state("chat").reset_after == 0
    assert limiter.acquire([window], consume=True).allowed


def test_in_memory_state_forgets_idle_keys():
    limiter = InMemorySlidingWindow()
    limiter.SWEEP_EVERY = 3
    window = Window("chat", "idle", 5, 1)
    limiter.acquire([window], consume=True)
    limiter._log["idle"].clear()
    for _ in range(3):
        limiter.acquire([Window("chat", "busy", 100, 60)], consume=True)
    assert "idle" not in limiter._log
