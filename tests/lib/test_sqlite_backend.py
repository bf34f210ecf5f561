"""The SQLite backend's cooperative wait for the write lock (``sofiia/db/sqlite3``)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from sofiia.db.sqlite3.base import retry_while_locked


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "lock.sqlite3"
    with sqlite3.connect(path) as setup:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE notes (text varchar(10))")
    return path


@contextmanager
def write_lock_held(path) -> Iterator[threading.Event]:
    """Another connection holds the write lock (with a row written) until the event is set."""
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("INSERT INTO notes VALUES ('held')")
        locked.set()
        release.wait(10)
        holder.execute("COMMIT")
        holder.close()

    thread = threading.Thread(target=hold)
    thread.start()
    locked.wait(5)
    try:
        yield release
    finally:
        release.set()
        thread.join(10)


def test_a_statement_waits_for_the_lock_and_then_runs(database):
    writer = sqlite3.connect(database, isolation_level=None, timeout=0)
    attempts = 0
    with write_lock_held(database) as release:

        def begin() -> sqlite3.Cursor:
            nonlocal attempts
            attempts += 1
            if attempts == 3:
                release.set()  # refused twice, so it waits and asks again: the holder may commit now
            return writer.execute("BEGIN IMMEDIATE")

        retry_while_locked(writer, begin)
    writer.execute("INSERT INTO notes VALUES ('mine')")
    writer.execute("COMMIT")
    assert attempts >= 3
    assert [row[0] for row in writer.execute("SELECT text FROM notes ORDER BY rowid")] == ["held", "mine"]


def test_a_statement_inside_a_transaction_is_not_retried(database):
    reader = sqlite3.connect(database, isolation_level=None, timeout=0)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM notes").fetchone()  # a read snapshot, no write lock
    attempts = []

    def insert() -> sqlite3.Cursor:
        attempts.append(1)
        return reader.execute("INSERT INTO notes VALUES ('late')")

    with write_lock_held(database), pytest.raises(sqlite3.OperationalError, match="locked"):
        retry_while_locked(reader, insert)
    assert attempts == [1]
    reader.execute("ROLLBACK")


def test_other_errors_are_raised_at_once(database):
    connection = sqlite3.connect(database, isolation_level=None, timeout=0)
    calls = []

    def broken():
        calls.append(1)
        return connection.execute("SELECT * FROM nowhere")

    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        retry_while_locked(connection, broken)
    assert calls == [1]


def test_the_wait_gives_up_after_its_deadline(database, monkeypatch):
    # About wall time: the backend's deadline (time.monotonic) really elapses, while the lock
    # stays held for as long as the statement keeps trying.
    monkeypatch.setattr("sofiia.db.sqlite3.base.LOCK_WAIT_SECONDS", 0.2)
    writer = sqlite3.connect(database, isolation_level=None, timeout=0)
    with write_lock_held(database):
        started = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            retry_while_locked(writer, lambda: writer.execute("BEGIN IMMEDIATE"))
        assert time.monotonic() - started < 0.9
