"""Fault injection under load: disposable PostgreSQL and Redis servers the tests may restart,
a send load from several clients that retry with the same key, a /readyz prober, and the
invariants checked afterwards (Jepsen-style):

- no key has more than one operator message (no duplicate);
- every 201 is in the database afterwards, delivered, with its reply (nothing lost);
- every failure is the contract's JSON error with a known code, never a 500 or HTML;
- the service recovers by itself once the dependency is back (every client's key is
  eventually acknowledged);
- /readyz told the truth while it happened.

Never touches the machine's shared PostgreSQL or Redis.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis
import requests

from tests.live import PROJECT, LiveConsole, free_port
from tests.waiting import wait_until

PG_BIN = Path(os.environ.get("SOFIIA_PG_BIN", "/usr/lib/postgresql/15/bin"))
RESULTS = PROJECT / "var" / "reliability" / "faults.json"

# What a send may answer while a fault is on: the contract's codes for a dependency or a node
# that is away, and a key another attempt still holds.
TRANSIENT_ERRORS = {
    "database_unavailable",
    "rate_limit_unavailable",
    "idempotency_key_in_flight",
    "node_unavailable",
    "node_timeout",
    "node_busy",
}


def _as_postgres(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    command = list(args)
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=60, **kwargs)


class DisposablePostgres:
    """A PostgreSQL cluster of the test's own, on a free port, that it may stop and restart."""

    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists():
            raise RuntimeError(f"PostgreSQL binaries not found in {PG_BIN}")
        self.dir = Path(tempfile.mkdtemp(prefix="sofiia-faults-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        self.port = free_port()
        _as_postgres(str(PG_BIN / "initdb"), "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres",
                     "--no-sync", "-E", "UTF8")  # fmt: skip
        self.start()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/sofiia"
        with psycopg.connect(f"postgres://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE sofiia")

    def _options(self) -> str:
        return f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"

    def start(self) -> None:
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-o", self._options(),
                     "-l", str(self.dir / "log"), "-w", "start")  # fmt: skip

    def stop(self) -> None:
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        subprocess.run(
            [*(["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []),
             str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop"],
            capture_output=True, check=False, timeout=60,
        )  # fmt: skip
        shutil.rmtree(self.dir, ignore_errors=True)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url) as conn:
            return conn.execute(sql, params).fetchall()


class ControlledRedis:
    """A Redis server of the test's own that it may stop and start again on the same port."""

    def __init__(self, *extra: str) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise RuntimeError("redis-server is not installed")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.extra = list(extra)
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url)

        def answering() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_until(answering, 10, what=f"redis-server on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def prepare_database(console: LiveConsole, operator: str) -> str:
    """Migrate the console's database and create an operator; returns the operator's token."""
    env = console.env()
    manage(env, "migrate", "--noinput")
    return manage(env, "create_operator", operator, "--token").strip().splitlines()[-1]


@dataclass
class Outcome:
    status: int | None  # None: no answer (connection refused, reset, timed out)
    code: str | None
    json_error: bool


@dataclass
class Load:
    """Clients that each send keys one after another, retrying every key until it is
    acknowledged (201): the way a careful client uses Idempotency-Key."""

    base: str
    token: str
    chat_ids: list[int]
    clients: int = 6
    client_timeout: float = 10.0
    outcomes: list[Outcome] = field(default_factory=list)
    acknowledged: dict[str, int] = field(default_factory=dict)  # key -> operator message id
    unfinished: set[str] = field(default_factory=set)
    stop_new_keys: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _client(self, index: int, deadline: float) -> None:
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {self.token}"
        chat_id = self.chat_ids[index % len(self.chat_ids)]
        while not self.stop_new_keys.is_set() and time.monotonic() < deadline:
            key = f"load-{uuid.uuid4().hex}"
            text = f"{key} text"
            with self.lock:
                self.unfinished.add(key)
            while time.monotonic() < deadline:
                try:
                    response = http.post(
                        f"{self.base}/api/chats/{chat_id}/send",
                        json={"text": text},
                        headers={"Idempotency-Key": key},
                        timeout=self.client_timeout,
                    )
                except requests.RequestException:
                    self._record(Outcome(None, None, False))
                    time.sleep(0.2)  # wall time: a real client's pause before it retries a live server
                    continue
                outcome = _outcome(response)
                self._record(outcome)
                if response.status_code == 201:
                    with self.lock:
                        self.acknowledged[key] = response.json()["operator_message"]["id"]
                        self.unfinished.discard(key)
                    break
                retry_after = response.headers.get("Retry-After", "0.2")
                # Wall time: a real client honouring the live server's Retry-After (at most 1 s).
                time.sleep(min(1.0, float(retry_after) if retry_after.isdigit() else 0.2))
        http.close()

    def _record(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)

    @contextmanager
    def running(self, *, max_seconds: float) -> Iterator[Load]:
        deadline = time.monotonic() + max_seconds
        threads = [threading.Thread(target=self._client, args=(i, deadline), daemon=True) for i in range(self.clients)]
        for thread in threads:
            thread.start()
        try:
            yield self
        finally:
            self.stop_new_keys.set()
            for thread in threads:
                thread.join(timeout=max_seconds + 30)

    def acknowledged_count(self) -> int:
        with self.lock:
            return len(self.acknowledged)

    def seen_error(self, code: str) -> bool:
        with self.lock:
            return any(outcome.code == code for outcome in self.outcomes)

    def figures(self) -> dict[str, Any]:
        statuses = Counter("no answer" if o.status is None else str(o.status) for o in self.outcomes)
        codes = Counter(o.code for o in self.outcomes if o.code)
        return {
            "requests": len(self.outcomes),
            "acknowledged": len(self.acknowledged),
            "unfinished_keys": len(self.unfinished),
            "statuses": dict(sorted(statuses.items())),
            "error_codes": dict(sorted(codes.items())),
        }


def _outcome(response: requests.Response) -> Outcome:
    if response.status_code < 400:
        return Outcome(response.status_code, None, True)
    try:
        body = response.json()
        is_json = response.headers.get("Content-Type", "").startswith("application/json")
        ok = is_json and isinstance(body.get("error"), str) and isinstance(body.get("detail"), str)
        return Outcome(response.status_code, body.get("error"), ok)
    except ValueError:
        return Outcome(response.status_code, None, False)


@dataclass
class Prober:
    """Polls /readyz every 100 ms; each probe is (started, ended, status or None, body)."""

    base: str
    probes: list[tuple[float, float, int | None, dict[str, Any]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                response = requests.get(f"{self.base}/readyz", timeout=3)
                status, body = response.status_code, response.json()
            except (requests.RequestException, ValueError):
                status, body = None, {}
            self.probes.append((started, time.monotonic(), status, body))
            self._stop.wait(0.1)  # wall time: /readyz every 100 ms, as a load balancer asks, until told to stop

    @contextmanager
    def running(self) -> Iterator[Prober]:
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(timeout=10)

    def during(self, start: float, end: float) -> list[tuple[int | None, dict[str, Any]]]:
        """Probes that started and ended inside [start, end]."""
        return [(status, body) for s, e, status, body in self.probes if s >= start and e <= end]


def operator_messages_by_key(rows: list[tuple[Any, ...]]) -> dict[str, list[tuple[Any, ...]]]:
    found: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        found.setdefault(row[1], []).append(row)
    return found


MESSAGES_SQL = (
    "SELECT m.id, m.idempotency_key, m.status, (SELECT count(*) FROM chats_message r WHERE r.reply_to_id = m.id) "
    "FROM chats_message m WHERE m.role = 'operator' AND m.idempotency_key LIKE 'load-%%'"
)


def check_invariants(load: Load, rows: list[tuple[Any, ...]], *, always_answered: bool = True) -> dict[str, int]:
    """The invariants over what the clients saw and what the database holds. With
    ``always_answered``, every request got an answer (no fault here cuts a connection)."""
    by_key = operator_messages_by_key(rows)
    duplicates = sum(len(messages) - 1 for messages in by_key.values() if len(messages) > 1)
    lost = 0
    for key, message_id in load.acknowledged.items():
        stored = [m for m in by_key.get(key, []) if m[0] == message_id]
        if not stored or stored[0][2] != "delivered" or stored[0][3] != 1:
            lost += 1
    server_errors = sum(1 for o in load.outcomes if o.status is not None and o.status >= 500 and o.code is None)
    server_errors += sum(1 for o in load.outcomes if o.status == 500)
    not_contract = sum(1 for o in load.outcomes if o.status is not None and o.status >= 400 and not o.json_error)
    unknown_codes = sum(1 for o in load.outcomes if o.code and o.code not in TRANSIENT_ERRORS)
    replies_without_ack_problem = sum(1 for m in rows if m[3] > 1)
    assert duplicates == 0, by_key
    assert lost == 0
    assert server_errors == 0, load.figures()
    assert not_contract == 0, load.figures()
    assert unknown_codes == 0, load.figures()
    assert replies_without_ack_problem == 0
    assert not load.unfinished, f"keys never acknowledged: {sorted(load.unfinished)[:5]}"
    if always_answered:
        assert not [o for o in load.outcomes if o.status is None], load.figures()
    return {"duplicates": duplicates, "lost": lost, "server_errors": server_errors}


def record(name: str, figures: dict[str, Any]) -> None:
    """Add one scenario's figures to var/reliability/faults.json (for docs/reliability.md)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[name] = figures
    RESULTS.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def sqlite_rows(path: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(MESSAGES_SQL.replace("%%", "%")).fetchall()


def gunicorn_workers(console: LiveConsole) -> list[int]:
    assert console.proc is not None
    children = Path(f"/proc/{console.proc.pid}/task/{console.proc.pid}/children").read_text().split()
    return [int(pid) for pid in children]


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
