"""How a writer waits for SQLite's write lock (``sofiia.db.sqlite3``), stated where code that
must make way for such writers (a prune pausing between batches) can read it without
depending on a database backend."""

from __future__ import annotations

# How long a statement waits for the write lock in all, and the pauses between attempts:
# the first, doubling up to the longest.
LOCK_WAIT_SECONDS = 20.0
FIRST_LOCK_PAUSE = 0.001
LONGEST_LOCK_PAUSE = 0.05
