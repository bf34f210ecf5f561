from __future__ import annotations

import redis
from django.conf import settings
from django.core.cache import caches

from sofiia.lib.limits import limiter_reset
from sofiia.settings import IDEMPOTENCY_CACHE_PREFIX, RATE_LIMIT_CACHE_PREFIX


def clear_caches() -> None:
    """Forget idempotency records and rate-limit windows: in this process, and in Redis, where
    live gunicorn consoles of earlier tests may have left them whatever this process uses."""
    for alias in ("default", "idempotency", "ratelimit"):
        cache = caches[alias]
        if hasattr(cache, "delete_pattern"):
            cache.delete_pattern("*")  # only this cache's prefixed keys, never the whole Redis database
        else:
            cache.clear()
    limiter_reset()
    client = redis.Redis.from_url(settings.SOFIIA_REDIS_URL, socket_connect_timeout=0.5)
    try:
        for prefix in (IDEMPOTENCY_CACHE_PREFIX, RATE_LIMIT_CACHE_PREFIX):
            keys = list(client.scan_iter(f"{prefix}:*", count=1000))
            if keys:
                client.delete(*keys)
    except redis.ConnectionError:
        pass  # no shared Redis here: the tests that need it say so themselves
    finally:
        client.close()
