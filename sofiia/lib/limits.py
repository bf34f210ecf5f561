"""Sliding-window limits as a service: the backend this process uses
(``SOFIIA_RATE_LIMIT_BACKEND``, the ``ratelimit`` cache), and what happens when it fails:
counted every time, logged once per burst. Send rate limits (``ratelimit``), the audit
trail's budgets and login defences all count through here."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from functools import cache

from django.conf import settings
from django.core.cache import caches
from prometheus_client import Counter

from sofiia.lib.cache_errors import cache_backend_errors
from sofiia.lib.sliding_window import Backend, InMemorySlidingWindow, Outcome, RedisSlidingWindow, Window

logger = logging.getLogger(__name__)

RATELIMIT_BACKEND_ERRORS = Counter(
    "sofiia_ratelimit_backend_errors",
    "Rate-limit checks that failed because the backend did not answer.",
)

CACHE_ALIAS = "ratelimit"
BACKEND_ERROR_LOG_INTERVAL = 10.0


@cache
def _backend(kind: str) -> Backend:
    if kind == "redis":
        from django_redis import get_redis_connection

        return RedisSlidingWindow(
            lambda: get_redis_connection(CACHE_ALIAS), lambda key: caches[CACHE_ALIAS].make_key(key)
        )
    return InMemorySlidingWindow()


def limiter_backend() -> Backend:
    return _backend(settings.SOFIIA_RATE_LIMIT_BACKEND)


def limiter_reset() -> None:
    """Forget the in-process limiter state (the Redis state lives in the ``ratelimit`` cache)."""
    _backend.cache_clear()


class BackendErrorLog:
    """Log a failing backend once per burst, not once per request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = -math.inf
        self._suppressed = 0

    def failed(self, exc: BaseException) -> None:
        RATELIMIT_BACKEND_ERRORS.inc()
        with self._lock:
            now = time.monotonic()
            if now - self._last < BACKEND_ERROR_LOG_INTERVAL:
                self._suppressed += 1
                return
            suppressed, self._suppressed, self._last = self._suppressed, 0, now
        logger.error(
            "ratelimit.backend_error",
            extra={
                "backend": settings.SOFIIA_RATE_LIMIT_BACKEND,
                "fail_open": settings.SOFIIA_RATE_LIMIT_FAIL_OPEN,
                "error": str(exc)[:300],
                "suppressed_since_last": suppressed,
            },
        )


backend_errors = BackendErrorLog()


def limiter_acquire(windows: Sequence[Window], *, consume: bool) -> Outcome | None:
    """The limiter's decision, or ``None`` when the backend failed (counted and logged)."""
    try:
        return limiter_backend().acquire(windows, consume=consume)
    except cache_backend_errors() as exc:
        backend_errors.failed(exc)
        return None


def budget_spend(*, scope: str, key: str, limit: int, seconds: int) -> bool:
    """Spend one unit of a budget of ``limit`` per ``seconds``; ``False`` once it is spent.

    When the backend fails the budget counts as available: callers use budgets to shed
    optional work, never to refuse a request.
    """
    outcome = limiter_acquire([Window(scope, key, limit, seconds)], consume=True)
    return outcome is None or outcome.allowed
