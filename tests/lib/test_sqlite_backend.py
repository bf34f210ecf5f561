"""The SQLite backend's cooperative wait for the write lock (``sofiia/db/sqlite3``)."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from sofiia.db.sqlite3.base import retry_while_locked


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "lock.sqlite3"
    with sqlite3.connect(path) as setup:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE notes (text varchar(10))")
    return path


def hold_write_lock(path, seconds: float) -> threading.Thread:
    locked = threading.Event()

    def hold() -> None:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("INSERT INTO notes VALUES ('held')")
        locked.set()
        time.sleep(seconds)
        holder.execute("COMMIT")
        holder.close()

    thread = threading.Thread(target=hold)
    thread.start()
    locked.wait(5)
    return thread


def test_a_statement_waits_for_the_lock_and_then_runs(database):
    writer = sqlite3.connect(database, isolation_level=None, timeout=0)
    holder = hold_write_lock(database, 0.3)
    started = time.monotonic()
    retry_while_locked(writer, lambda: writer.execute("BEGIN IMMEDIATE"))
    waited = time.monotonic() - started
    writer.execute("INSERT INTO notes VALUES ('mine')")
    writer.execute("COMMIT")
    holder.join()
    assert waited >= 0.1
    assert [row[0] for row in writer.execute("SELECT text FROM notes ORDER BY rowid")] == ["held", "mine"]


def test_a_statement_inside_a_transaction_is_not_retried(database):
    reader = sqlite3.connect(database, isolation_level=None, timeout=0)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM notes").fetchone()  # a read snapshot, no write lock
    holder = hold_write_lock(database, 0.3)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        retry_while_locked(reader, lambda: reader.execute("INSERT INTO notes VALUES ('late')"))
    reader.execute("ROLLBACK")
    holder.join()


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
    monkeypatch.setattr("sofiia.db.sqlite3.base.LOCK_WAIT_SECONDS", 0.2)
    writer = sqlite3.connect(database, isolation_level=None, timeout=0)
    holder = hold_write_lock(database, 1.0)
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        retry_while_locked(writer, lambda: writer.execute("BEGIN IMMEDIATE"))
    assert time.monotonic() - started < 0.9
    holder.join()
