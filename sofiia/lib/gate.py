"""A per-process limit of requests doing CPU work at once, that lets go while they wait.

Under gevent a worker runs one greenlet at a time, in the order they become ready. A thousand
sends arriving together each take a few milliseconds of CPU before their node call and after
it; with nothing in front of them, a health probe or a page load arriving in such a burst waits
behind all of them at every step of its own. The gate admits at most ``limit`` sends into their
CPU-bound steps; the rest wait parked, costing nothing and in no scheduler queue. A holder gives
its place up while it waits on something slow (the node) and takes one again after. Total work
is the same; what changes is that requests outside the gate never queue behind a burst.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class ConcurrencyGate:
    def __init__(self, name: str) -> None:
        self._holding: ContextVar[bool] = ContextVar(f"gate_{name}", default=False)
        self._semaphore: threading.Semaphore | None = None
        self._limit = 0
        self._lock = threading.Lock()

    def _semaphore_for(self, limit: int) -> threading.Semaphore:
        # Made on first use in the process (after the fork, and after gevent's patch), and
        # again when the limit changes (tests change it).
        with self._lock:
            if self._semaphore is None or self._limit != limit:
                self._semaphore, self._limit = threading.Semaphore(limit), limit
            return self._semaphore

    @contextmanager
    def held(self, limit: int, *, before_waiting: Callable[[], object] | None = None) -> Iterator[None]:
        """Hold one of ``limit`` places for the block (re-entrant: a holder does not wait again).

        ``before_waiting`` runs only when no place is free, before this request waits for one
        (to let go of what waiters must not hold).
        """
        if self._holding.get():
            yield
            return
        semaphore = self._semaphore_for(limit)
        if not semaphore.acquire(blocking=False):
            if before_waiting is not None:
                before_waiting()
            semaphore.acquire()
        token = self._holding.set(True)
        try:
            yield
        finally:
            self._holding.reset(token)
            semaphore.release()

    def is_held(self) -> bool:
        """Whether the running request holds a place."""
        return self._holding.get()

    @contextmanager
    def released(self) -> Iterator[None]:
        """Give the place up for the block, if this request holds one, and take one back after."""
        semaphore = self._semaphore
        if not self._holding.get() or semaphore is None:
            yield
            return
        semaphore.release()
        token = self._holding.set(False)
        try:
            yield
        finally:
            semaphore.acquire()
            self._holding.reset(token)


send_gate = ConcurrencyGate("sends")
