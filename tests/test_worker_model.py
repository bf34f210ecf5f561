"""The gevent worker model from the inside: the process patched as gunicorn.conf.py patches
the master, then Django set up as a worker sets it up. Each case runs in a subprocess, since
patching the test process itself would change every other test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from tests.live import PROJECT

PRELUDE = """
import json, runpy
runpy.run_path("gunicorn.conf.py")  # patches, as in the gunicorn master
import django
django.setup()
import gevent
from django.db import connection, transaction
"""


def run_patched(code: str, tmp_path: Path, **env: str) -> Any:
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SOFIIA_", "DJANGO_", "PROMETHEUS_", "GUNICORN_", "DATABASE_URL"))
    }
    environ.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'model.sqlite3'}",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
        SOFIIA_INSTANCE_DIR=str(tmp_path / "instance"),
        **env,
    )
    script = PRELUDE + textwrap.dedent(code)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT, env=environ, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_each_greenlet_has_its_own_database_connection(tmp_path):
    seen = run_patched(
        """
        from gevent.event import Event
        connections = []
        both_connected = Event()
        def query():
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            connections.append(id(connection.connection))
            if len(connections) == 2:
                both_connected.set()
            both_connected.wait(10)  # both greenlets are alive at once
            connection.close()
        gevent.joinall([gevent.spawn(query), gevent.spawn(query)], raise_error=True)
        print(json.dumps(connections))
        """,
        tmp_path,
    )
    assert len(set(seen)) == 2


def test_a_writer_waiting_for_sqlites_lock_lets_the_holder_finish(tmp_path):
    # The holder yields inside its transaction, as it does on a Redis or node call. With
    # SQLite's own busy wait, the waiter would block the whole worker, holder included,
    # until "database is locked".
    order = run_patched(
        """
        import time
        from gevent.event import Event
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE notes (text varchar(10))")
        connection.close()
        order = []
        holder_wrote, waiter_writing = Event(), Event()
        def holder():
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("INSERT INTO notes VALUES ('first')")
                order.append("holder wrote")
                holder_wrote.set()
                # Back only once the waiter has run into the lock and yielded while it waits.
                waiter_writing.wait(10)
            order.append("holder committed")
            connection.close()
        def waiter():
            holder_wrote.wait(10)
            waiter_writing.set()  # wakes the holder only when this greenlet yields
            started = time.monotonic()
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("INSERT INTO notes VALUES ('second')")
            order.append("waiter committed")
            assert time.monotonic() - started < 5, "waited for the lock far longer than the holder held it"
            connection.close()
        gevent.joinall([gevent.spawn(holder), gevent.spawn(waiter)], raise_error=True)
        with connection.cursor() as cursor:
            cursor.execute("SELECT text FROM notes ORDER BY rowid")
            order.extend(row[0] for row in cursor.fetchall())
        print(json.dumps(order))
        """,
        tmp_path,
    )
    assert order == ["holder wrote", "holder committed", "waiter committed", "first", "second"]


def test_the_locks_of_the_limiter_the_node_slots_and_the_send_gate_are_greenlet_locks(tmp_path):
    # A lock taken before the patch would be a real one: a greenlet waiting on it would
    # block the hub, and the greenlet holding it could never release it.
    outcome = run_patched(
        """
        from nodes.bulkhead import node_bulkhead
        from sofiia.lib.gate import send_gate
        from sofiia.lib.sliding_window import InMemorySlidingWindow
        from gevent.event import Event
        results = {}
        locks = (
            ("limiter", InMemorySlidingWindow()._lock),
            ("bulkhead", node_bulkhead()._lock),
            ("send gate", send_gate._semaphore_for(1)),
        )
        for name, lock in locks:
            events = []
            held, waiting = Event(), Event()
            def holder():
                with lock:
                    held.set()
                    # Back only once the waiter has yielded: in acquire, if the lock is a
                    # greenlet lock; a real lock would block the hub until its timeout.
                    waiting.wait(10)
                    events.append("released")
            def waiter():
                held.wait(10)
                waiting.set()
                acquired = lock.acquire(timeout=2)
                events.append("acquired" if acquired else "timed out")
                if acquired:
                    lock.release()
            gevent.joinall([gevent.spawn(holder), gevent.spawn(waiter)], raise_error=True)
            results[name] = events
        print(json.dumps(results))
        """,
        tmp_path,
    )
    assert outcome == {name: ["released", "acquired"] for name in ("limiter", "bulkhead", "send gate")}
