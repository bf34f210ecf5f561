"""Django's SQLite backend, waiting for the write lock without blocking other greenlets.

SQLite admits one writer at a time. The stock backend waits for the lock in SQLite's busy
handler, a sleep inside C: under gevent it stops every greenlet of the worker, including
the one that holds the lock and is waiting for its turn to commit, so the wait ends only
in "database is locked". Here SQLite answers "busy" at once (``timeout`` 0) and the wait is
a ``time.sleep`` loop, which gevent turns into a cooperative sleep.

Only a statement outside a transaction is retried (``BEGIN IMMEDIATE`` itself, or an
autocommit write): one refused with "busy" has done nothing. Inside an ``IMMEDIATE``
transaction the write lock is already held, so writes are not refused there.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from django.db.backends.sqlite3 import base
from django.db.backends.sqlite3._functions import register as register_functions  # type: ignore[import-untyped]
from django.utils.asyncio import async_unsafe

from sofiia.lib.lock_wait import FIRST_LOCK_PAUSE as _FIRST_PAUSE
from sofiia.lib.lock_wait import LOCK_WAIT_SECONDS, LONGEST_LOCK_PAUSE

T = TypeVar("T")


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    message = str(exc)
    return "database is locked" in message or "database is busy" in message


def retry_while_locked(connection: sqlite3.Connection, run: Callable[[], T]) -> T:
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    pause = _FIRST_PAUSE
    while True:
        try:
            return run()
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or connection.in_transaction or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, LONGEST_LOCK_PAUSE)


class CooperativeCursorWrapper(base.SQLiteCursorWrapper):
    def execute(self, query: str, params: Any = None) -> Any:
        return retry_while_locked(self.connection, lambda: super(CooperativeCursorWrapper, self).execute(query, params))

    def executemany(self, query: str, param_list: Any) -> Any:
        # A generator of parameters could be consumed by a refused attempt: keep a list.
        params = list(param_list)
        return retry_while_locked(
            self.connection, lambda: super(CooperativeCursorWrapper, self).executemany(query, params)
        )


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self) -> dict[str, Any]:
        params: dict[str, Any] = super().get_connection_params()
        params["timeout"] = 0
        return params

    init_commands: list[str]

    @async_unsafe
    def get_new_connection(self, conn_params: dict[str, Any]) -> sqlite3.Connection:
        connection = sqlite3.connect(**conn_params)
        try:
            register_functions(connection)
            for statement in ("PRAGMA foreign_keys = ON", "PRAGMA legacy_alter_table = OFF", *self.init_commands):
                if statement := statement.strip():
                    retry_while_locked(connection, partial(connection.execute, statement))
        except BaseException:
            connection.close()
            raise
        return connection

    def create_cursor(self, name: str | None = None) -> CooperativeCursorWrapper:
        return self.connection.cursor(factory=CooperativeCursorWrapper)
