"""Sliding-window-log rate limiting, exact under concurrency.

Each scope (a chat, an operator) keeps the timestamps of the requests it admitted in the
last ``window`` seconds. A request is admitted only if *every* scope it falls under has
fewer than ``limit`` entries; then it is recorded in all of them at once. Checking and
recording happen in one atomic step — a Lua script on Redis (one round trip, Redis' own
clock, so instances with skewed clocks agree), a lock in memory — so no number of
simultaneous requests, workers or instances admits more than ``limit`` in any window.

Burst behaviour: a full quota may be spent at once (``limit`` requests back to back); after
that one request becomes possible each time the oldest admitted one leaves the window. There
is no boundary effect as with fixed windows: any ``window``-long interval holds at most
``limit`` admitted requests. Blocked requests are not recorded, so hammering does not
extend a block.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from redis import Redis
from redis.commands.core import Script

from sofiia.lib.clock import clock_monotonic_us, clock_offset_us

MICROSECONDS = 1_000_000


@dataclass(frozen=True)
class Window:
    scope: str
    key: str
    limit: int
    seconds: int


@dataclass(frozen=True)
class WindowState:
    scope: str
    limit: int
    seconds: int
    count: int  # admitted requests in the window, this one included when it was admitted
    reset_after: float  # seconds until the oldest admitted request leaves the window (0: none)

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)


@dataclass(frozen=True)
class Outcome:
    allowed: bool
    states: tuple[WindowState, ...]
    blocked_scope: str | None = None

    def state(self, scope: str) -> WindowState:
        return next(s for s in self.states if s.scope == scope)


class Backend(Protocol):
    def acquire(self, windows: Sequence[Window], *, consume: bool) -> Outcome:
        """Admit (and with ``consume`` record) one request in all ``windows``, atomically."""


def _outcome(windows: Sequence[Window], counts: list[int], oldest: list[int], now: int, blocked: int) -> Outcome:
    states = tuple(
        WindowState(
            scope=w.scope,
            limit=w.limit,
            seconds=w.seconds,
            count=count,
            reset_after=0.0 if first < 0 else max(0.0, (first + w.seconds * MICROSECONDS - now) / MICROSECONDS),
        )
        for w, count, first in zip(windows, counts, oldest, strict=True)
    )
    blocked_scope = windows[blocked - 1].scope if blocked else None
    return Outcome(allowed=not blocked, states=states, blocked_scope=blocked_scope)


class InMemorySlidingWindow:
    """Per-process state: exact within one process (all its threads), not shared between processes."""

    SWEEP_EVERY = 10_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._log: dict[str, deque[int]] = {}
        self._calls = 0

    def acquire(self, windows: Sequence[Window], *, consume: bool) -> Outcome:
        with self._lock:
            now = clock_monotonic_us()
            counts, oldest, blocked = [], [], 0
            for index, window in enumerate(windows, start=1):
                entries = self._trimmed(window, now)
                counts.append(len(entries))
                oldest.append(entries[0] if entries else -1)
                if not blocked and len(entries) >= window.limit:
                    blocked = index
            if not blocked and consume:
                for index, window in enumerate(windows):
                    self._log.setdefault(window.key, deque()).append(now)
                    counts[index] += 1
                    if oldest[index] < 0:
                        oldest[index] = now
            self._sweep(now)
            return _outcome(windows, counts, oldest, now, blocked)

    def _trimmed(self, window: Window, now: int) -> deque[int]:
        entries = self._log.get(window.key, deque())
        horizon = now - window.seconds * MICROSECONDS
        while entries and entries[0] <= horizon:
            entries.popleft()
        return entries

    def _sweep(self, now: int) -> None:
        """Forget idle keys now and then, so the map does not grow with every chat ever seen."""
        self._calls += 1
        if self._calls % self.SWEEP_EVERY:
            return
        longest = 24 * 3600 * MICROSECONDS
        for key in [k for k, entries in self._log.items() if not entries or entries[-1] <= now - longest]:
            del self._log[key]


# KEYS[i]: the sorted set of scope i. ARGV[1]: a unique member for this request;
# ARGV[2]: "1" to record an admitted request; ARGV[3]: microseconds added to Redis' clock
# (zero except when a test moves the clock); ARGV[2 + 2i], ARGV[3 + 2i]: limit and window
# (microseconds) of scope i. Returns {blocked scope index or 0, now, count_1, oldest_1, ...}.
_REDIS_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2]) + tonumber(ARGV[3])
local blocked = 0
local counts, oldest = {}, {}
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 + 2 * i])
  local window = tonumber(ARGV[3 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  counts[i] = redis.call('ZCARD', key)
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if first[2] then oldest[i] = tonumber(first[2]) else oldest[i] = -1 end
  if blocked == 0 and counts[i] >= limit then blocked = i end
end
if blocked == 0 and ARGV[2] == '1' then
  for i, key in ipairs(KEYS) do
    redis.call('ZADD', key, now, ARGV[1])
    redis.call('PEXPIRE', key, math.ceil(tonumber(ARGV[3 + 2 * i]) / 1000))
    counts[i] = counts[i] + 1
    if oldest[i] < 0 then oldest[i] = now end
  end
end
local result = {blocked, now}
for i = 1, #KEYS do
  result[#result + 1] = counts[i]
  result[#result + 1] = oldest[i]
end
return result
"""


class RedisSlidingWindow:
    """Shared by every worker and instance using the same Redis.

    ``make_key`` namespaces the keys (the ``ratelimit`` cache's key function, so its prefix
    and version apply to them as to any other key of that cache).
    """

    def __init__(self, connection_factory: Callable[[], Redis], make_key: Callable[[str], str]) -> None:
        self._connection_factory = connection_factory
        self._make_key = make_key
        self._script: Script | None = None

    def acquire(self, windows: Sequence[Window], *, consume: bool) -> Outcome:
        connection = self._connection_factory()
        if self._script is None:
            self._script = connection.register_script(_REDIS_SCRIPT)
        args: list[str | int] = [uuid.uuid4().hex, "1" if consume else "0", clock_offset_us()]
        for window in windows:
            args += [window.limit, window.seconds * MICROSECONDS]
        keys = [self._make_key(window.key) for window in windows]
        reply = self._script(keys=keys, args=args, client=connection)
        blocked, now, rest = int(reply[0]), int(reply[1]), [int(v) for v in reply[2:]]
        return _outcome(windows, rest[0::2], rest[1::2], now, blocked)
