"""``cache_get_or_add``: one step that claims a free key or reads the value holding it."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.core.cache import caches
from django_redis import get_redis_connection

from sofiia.lib.cache_ops import cache_get_or_add


def test_a_free_key_is_stored_and_a_held_one_is_read(send_backend):
    cache = caches["idempotency"]
    key = f"test:{uuid.uuid4().hex}"
    assert cache_get_or_add(cache, key, {"claim": 1}, timeout=60) == (True, None)
    assert cache_get_or_add(cache, key, {"claim": 2}, timeout=60) == (False, {"claim": 1})
    assert cache.get(key) == {"claim": 1}  # the same record the cache API reads


@pytest.mark.parametrize("send_backend", ["redis"], indirect=True)
def test_the_value_lives_for_the_timeout(send_backend):
    cache = caches["idempotency"]
    key = f"test:{uuid.uuid4().hex}"
    cache_get_or_add(cache, key, "claimed", timeout=2.5)
    assert 2000 < get_redis_connection("idempotency").pttl(cache.make_key(key)) <= 2500


def test_of_many_at_once_exactly_one_stores_and_all_others_read_its_value(send_backend):
    cache = caches["idempotency"]
    key = f"test:{uuid.uuid4().hex}"
    barrier = threading.Barrier(20)
    results: list[tuple[bool, object]] = []

    def claim(n: int) -> None:
        barrier.wait()
        results.append(cache_get_or_add(cache, key, n, timeout=60))

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    winners = [found for added, found in results if added]
    assert len(results) == 20
    assert winners == [None]
    stored = cache.get(key)
    assert all(found == stored for added, found in results if not added)
