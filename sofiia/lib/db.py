"""Database connection housekeeping, and riding out a database that goes away for a moment."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import OperationalError, connections, transaction

from sofiia.lib.errors import is_database_outage

logger = logging.getLogger(__name__)

T = TypeVar("T")

_FIRST_DELAY, _MAX_DELAY = 0.1, 1.0


def db_connections_release() -> None:
    """Give this request's database connections back before a long wait.

    On PostgreSQL a connection goes back to the worker's pool, so requests waiting on
    something else (a node's answer) hold none; the next query takes one again. A
    connection inside a transaction is kept: closing it would end the transaction.
    """
    for connection in connections.all(initialized_only=True):
        if connection.connection is not None and not connection.in_atomic_block:
            connection.close()


def db_commit_guard() -> None:
    """Call last inside ``transaction.atomic()``: refuse to leave the block "successfully"
    when the transaction can only roll back.

    A savepoint that failed inside, its error caught there, marks the
    transaction for rollback, and Django then rolls it back *silently* at the end of the
    block. When the database dropped out mid-transaction that would turn a write that never
    happened into a success; raising makes the caller see the outage and retry.
    """
    if transaction.get_rollback():
        raise OperationalError("the transaction was rolled back: the database failed during it")


def _drop_broken_connections() -> None:
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()


def db_retry(
    operation: Callable[[], T],
    *,
    seconds: float,
    what: str,
    transient: Callable[[BaseException], bool] = is_database_outage,
) -> T:
    """Run ``operation`` (one transaction, safe to run again), retrying while the database
    is unreachable, for up to ``seconds``; then the outage is raised.

    A PostgreSQL restart takes a few seconds: a write that falls into it is retried rather
    than lost. Only outages are retried (``sofiia.lib.errors.is_database_outage``), or what
    else ``transient`` says may pass.
    """
    deadline = time.monotonic() + seconds
    delay = _FIRST_DELAY
    attempt = 1
    while True:
        try:
            return operation()
        except Exception as exc:
            if not transient(exc) or time.monotonic() + delay > deadline:
                raise
            logger.warning("database.retry", extra={"what": what, "attempt": attempt, "error": str(exc)[:200]})
        _drop_broken_connections()
        time.sleep(delay)
        delay = min(delay * 2, _MAX_DELAY)
        attempt += 1


def db_finish_later(
    operation: Callable[[], object],
    *,
    seconds: float,
    what: str,
    transient: Callable[[BaseException], bool] = is_database_outage,
) -> None:
    """Keep retrying ``operation`` in the background for up to ``seconds`` once a request has
    given up waiting for the database, so the work is done as soon as it is back.

    Under gevent the thread is a greenlet. If the process dies first, the work is not done:
    callers only hand over what a later attempt can also do or undo (a lease runs out).
    """

    def run() -> None:
        try:
            db_retry(operation, seconds=seconds, what=what, transient=transient)
            logger.info("database.finished_later", extra={"what": what})
        except Exception as exc:
            logger.error("database.gave_up", extra={"what": what, "error": str(exc)[:200]})
        finally:
            connections.close_all()

    threading.Thread(target=run, name=f"db-finish-{what}", daemon=True).start()
