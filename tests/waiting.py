"""Waiting, in tests, for something another process does.

A test waits on an event, a barrier or the application's clock (``sofiia.lib.clock``) when
what it waits for happens in its own process. What happens in another process (a console
under gunicorn, a Redis or Caddy starting, a worker being replaced) sends no event here:
``wait_until`` asks again until it is so, up to a deadline, and fails the test after that.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(predicate: Callable[[], object], timeout: float, *, what: str = "", interval: float = 0.05) -> float:
    """Ask ``predicate`` until it is true; fail after ``timeout`` seconds. Returns how long it took."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, f"timed out after {timeout} s waiting for {what or predicate}"
        time.sleep(interval)  # wall time: the state asked about is another process's, with no event to wait on
    return time.monotonic() - started
