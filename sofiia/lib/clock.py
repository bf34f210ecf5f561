"""The application's clock for windows and leases.

Rate-limit windows, delivery leases and idempotency claims read the time through here, so
a test can move time forward (``clock_advance``) instead of sleeping it out. Nothing else
ever sets the offset: in production it is zero.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from django.utils import timezone

_offset_seconds = 0.0


def clock_now() -> datetime:
    """Aware UTC now."""
    return timezone.now() + timedelta(seconds=_offset_seconds)


def clock_monotonic_us() -> int:
    """Monotonic microseconds, for in-process windows."""
    return time.monotonic_ns() // 1000 + clock_offset_us()


def clock_offset_us() -> int:
    """How far the clock was moved, in microseconds (added to Redis' own time too)."""
    return int(_offset_seconds * 1_000_000)


def clock_advance(seconds: float) -> None:
    global _offset_seconds
    _offset_seconds += seconds


def clock_reset() -> None:
    global _offset_seconds
    _offset_seconds = 0.0
