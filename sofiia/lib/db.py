"""Database connection housekeeping."""

from __future__ import annotations

from django.db import connections


def db_connections_release() -> None:
    """Give this request's database connections back before a long wait.

    On PostgreSQL a connection goes back to the worker's pool, so requests waiting on
    something else (a node's answer) hold none; the next query takes one again. A
    connection inside a transaction is kept: closing it would end the transaction.
    """
    for connection in connections.all(initialized_only=True):
        if connection.connection is not None and not connection.in_atomic_block:
            connection.close()
