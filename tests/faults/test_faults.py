"""Faults injected under a send load against live gunicorn consoles on real PostgreSQL and
Redis (servers of the tests' own) and on SQLite, each followed by the invariants of
tests/faults/harness.py: no duplicate, nothing acknowledged lost, every failure the
contract's JSON error, recovery without intervention, /readyz truthful.

Each scenario adds its figures to var/reliability/faults.json (docs/reliability.md).
Run with ``make faults`` (they are excluded from the default run).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.faults.harness import (
    MESSAGES_SQL,
    Load,
    Prober,
    check_invariants,
    gunicorn_workers,
    kill,
    manage,
    record,
    sqlite_rows,
)
from tests.live import LiveConsole, free_port
from tests.test_metrics import sample
from tests.waiting import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.live, pytest.mark.redis]


def stack_env(postgres, redis_server, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": postgres.url,
        "SOFIIA_REDIS_URL": redis_server.url,
        "SOFIIA_IDEMPOTENCY_BACKEND": "redis",
        "SOFIIA_RATE_LIMIT_BACKEND": "redis",
        "SOFIIA_INFER_TIMEOUT": "5",
        # Longer than a client's pause between retries, so a reused connection is never
        # closed under it.
        "GUNICORN_KEEPALIVE": "5",
        **extra,
    }


def start_with_operator(console, *, workers: int = 2, **env: str) -> tuple[LiveConsole, str]:
    preparing = LiveConsole(env_overrides=env, workers=workers)
    environment = preparing.env()
    manage(environment, "migrate", "--noinput")
    token = manage(environment, "create_operator", f"op-{uuid.uuid4().hex[:8]}", "--token").strip().splitlines()[-1]
    return console(workers=workers, **env), token


def acknowledged_from_now(load: Load, keys: int, timeout: float = 30) -> None:
    """Until the load has ``keys`` more keys acknowledged than now: under way, or recovered."""
    start = load.acknowledged_count()
    wait_until(lambda: load.acknowledged_count() >= start + keys, timeout, what=f"{keys} more keys acknowledged")


def new_chats(live: LiveConsole, token: str, agent: str = "echo", count: int = 3, node: str = "NODA1") -> list[int]:
    http = live.session(token)
    ids = []
    for i in range(count):
        response = http.post(
            f"{live.base}/api/chats", json={"title": f"{agent} {i}", "agent": agent, "node": node}, timeout=10
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


def test_postgresql_restarted_under_load(console, postgres, controlled_redis):
    redis_server = controlled_redis()
    live, token = start_with_operator(console, **stack_env(postgres, redis_server))
    load = Load(live.base, token, new_chats(live, token), clients=6)
    prober = Prober(live.base)
    with prober.running(), load.running(max_seconds=60):
        acknowledged_from_now(load, 10)
        down = time.monotonic()
        postgres.stop()
        time.sleep(3)  # wall time: an outage as long as a real restart, for clients and /readyz to live through
        starting = time.monotonic()
        postgres.start()
        up = time.monotonic()
        acknowledged_from_now(load, 10)  # the load recovers by itself
    invariants = check_invariants(load, postgres.query(MESSAGES_SQL))
    # Probes wholly inside the time the database was certainly down.
    during = prober.during(down + 0.5, starting)
    assert during, "no probe during the outage"
    assert all(status == 503 for status, _ in during), [status for status, _ in during]
    assert all(body.get("error") == "database_unavailable" for _, body in during)
    recovered = wait_until(
        lambda: requests.get(f"{live.base}/readyz", timeout=3).status_code == 200, 15, what="/readyz", interval=0.1
    )
    record(
        "postgresql_restarted",
        {**load.figures(), **invariants, "faults": 1, "outage_s": round(up - down, 1),
         "readyz_503_during_outage": len(during), "readyz_recovered_after_s": round(recovered, 1)},
    )  # fmt: skip


def test_redis_restarted_under_load(console, postgres, controlled_redis):
    redis_server = controlled_redis()
    live, token = start_with_operator(console, **stack_env(postgres, redis_server))
    load = Load(live.base, token, new_chats(live, token), clients=6)
    prober = Prober(live.base)
    with prober.running(), load.running(max_seconds=60):
        acknowledged_from_now(load, 10)
        down = time.monotonic()
        redis_server.stop()
        time.sleep(3)  # wall time: an outage as long as a real restart, for clients and /readyz to live through
        starting = time.monotonic()
        redis_server.start()
        up = time.monotonic()
        acknowledged_from_now(load, 10)  # the load recovers by itself
    invariants = check_invariants(load, postgres.query(MESSAGES_SQL))
    during = prober.during(down + 0.5, starting)
    assert during
    # Degraded, not down: the database guards exactly-once without Redis.
    assert all(status == 200 and body["status"] == "degraded" for status, body in during), during
    assert all(body["checks"]["idempotency"] == "degraded" for _, body in during)
    wait_until(
        lambda: requests.get(f"{live.base}/readyz", timeout=3).json()["status"] == "ok",
        15,
        what="/readyz",
        interval=0.1,
    )
    assert load.figures()["error_codes"].get("rate_limit_unavailable", 0) > 0  # limits failed closed
    record("redis_restarted", {**load.figures(), **invariants, "faults": 1, "outage_s": round(up - down, 1)})


def test_a_worker_killed_mid_send(console, postgres, controlled_redis):
    redis_server = controlled_redis()
    # Short infer timeout: the lease of the killed worker's sends (infer timeout + 15 s) runs
    # out within the test.
    live, token = start_with_operator(console, **stack_env(postgres, redis_server, SOFIIA_INFER_TIMEOUT="2"))
    load = Load(live.base, token, new_chats(live, token, agent="slow1"), clients=8, client_timeout=10)
    killed = 0
    with load.running(max_seconds=60):
        acknowledged_from_now(load, 8)  # every client sending: sends in flight on both workers
        for pid in gunicorn_workers(live)[:1]:
            kill(pid)
            killed += 1
        acknowledged_from_now(load, 8)  # the replacement worker serves
    invariants = check_invariants(load, postgres.query(MESSAGES_SQL), always_answered=False)
    figures = load.figures()
    assert figures["statuses"].get("no answer", 0) > 0  # the killed worker's sends were cut off
    assert requests.get(f"{live.base}/readyz", timeout=3).status_code == 200
    record("worker_killed_mid_send", {**figures, **invariants, "faults": killed})


def test_a_node_that_answers_after_the_client_gave_up(console, postgres, controlled_redis, nodes):
    redis_server = controlled_redis()
    live, token = start_with_operator(console, **stack_env(postgres, redis_server))
    load = Load(live.base, token, new_chats(live, token, agent="slow1.5"), clients=4, client_timeout=0.5)
    with load.running(max_seconds=30):
        acknowledged_from_now(load, 8)  # two keys a client, each given up on at least once
    invariants = check_invariants(load, postgres.query(MESSAGES_SQL), always_answered=False)
    figures = load.figures()
    assert figures["statuses"].get("no answer", 0) > 0  # the clients gave up, then retried
    # The node answered each key once, however often the client asked.
    calls = [c for c in nodes["NODA1"].calls if c.text.startswith("load-")]
    assert len(calls) == len(load.acknowledged)
    record("node_answers_after_client_gave_up", {**figures, **invariants, "faults": figures["statuses"]["no answer"]})


NODE_FAULTS = [
    # agent, node, expected status: a node that answers 500, garbage, JSON without a reply,
    # hangs past the infer timeout, or refuses the connection.
    ("fail500", "NODA1", 502),
    ("garbage", "NODA1", 502),
    ("badjson", "NODA1", 502),
    ("slow10", "NODA1", 504),
    ("echo", "NODA3", 502),
]


def test_a_node_that_fails_keeps_each_message_once_for_its_retries(console, postgres, controlled_redis, nodes):
    redis_server = controlled_redis()
    refused = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    node_list = ",".join(f"{name}={router.url}" for name, router in nodes.items()) + f",NODA3={refused}"
    live, token = start_with_operator(
        console, **stack_env(postgres, redis_server, SOFIIA_INFER_TIMEOUT="1", SOFIIA_NODES=node_list)
    )
    http = live.session(token)
    answers = 0
    for agent, node, status in NODE_FAULTS:
        (chat_id,) = new_chats(live, token, agent=agent, count=1, node=node)
        keys = [f"node-{agent}-{uuid.uuid4().hex}" for _ in range(3)]
        before = len(nodes["NODA1"].calls)
        for key in keys:
            for _ in range(3):
                response = http.post(
                    f"{live.base}/api/chats/{chat_id}/send",
                    json={"text": key},
                    headers={"Idempotency-Key": key},
                    timeout=10,
                )
                answers += 1
                assert response.status_code == status, response.text
                body = response.json()
                assert body["error"] == ("node_timeout" if status == 504 else "node_unavailable")
                assert body["operator_message"]["status"] == "failed"
        rows = postgres.query(
            "SELECT idempotency_key, status, attempts FROM chats_message WHERE role = 'operator' AND chat_id = %s",
            chat_id,
        )
        assert sorted(r[0] for r in rows) == sorted(keys), agent  # one message per key
        assert {(r[1], r[2]) for r in rows} == {("failed", 3)}, agent  # every retry on the same message
        assert len(nodes["NODA1"].calls) - before == (len(keys) * 3 if node == "NODA1" else 0), agent
    record("node_fails", {"requests": answers, "faults": answers, "kinds": [a if n == "NODA1" else "refused"
           for a, n, _ in NODE_FAULTS], "duplicates": 0, "lost": 0, "server_errors": 0})  # fmt: skip


@pytest.mark.parametrize("policy", ["allkeys-lru", "noeviction"])
def test_a_full_redis_never_breaks_exactly_once(console, postgres, controlled_redis, policy):
    redis_server = controlled_redis("--maxmemory", "3mb", "--maxmemory-policy", policy)
    live, token = start_with_operator(console, **stack_env(postgres, redis_server))
    client = redis_server.client()
    # Fill it past its limit with keys that have a TTL (in batches: one round trip each).
    for batch in range(8):
        pipe = client.pipeline(transaction=False)
        for i in range(500):
            pipe.set(f"filler:{batch}:{i}", "x" * 2000, ex=3600)
        pipe.execute(raise_on_error=False)
    if policy == "noeviction":
        # Over its limit for good: every write is refused until memory is freed.
        client.config_set("maxmemory", str(int(client.info("memory")["used_memory"]) // 2))
    load = Load(live.base, token, new_chats(live, token), clients=6)
    with load.running(max_seconds=60):
        acknowledged_from_now(load, 10)  # sends acknowledged with Redis full
        if policy == "noeviction":
            client.flushdb()  # the operator frees memory: the limits come back by themselves
            client.config_set("maxmemory", "3mb")
        acknowledged_from_now(load, 10)
    invariants = check_invariants(load, postgres.query(MESSAGES_SQL))
    # Every acknowledged key replays the same message, whether Redis kept its record or not.
    http = live.session(token)
    replays = 0
    for key, message_id in list(load.acknowledged.items())[:30]:
        rows = postgres.query("SELECT chat_id, text FROM chats_message WHERE id = %s", message_id)
        chat_id, text = rows[0]
        response = http.post(
            f"{live.base}/api/chats/{chat_id}/send", json={"text": text}, headers={"Idempotency-Key": key}, timeout=10
        )
        assert response.status_code == 201
        assert response.headers["Idempotent-Replayed"] == "true"
        assert response.json()["operator_message"]["id"] == message_id
        replays += 1
    stats = client.info("stats")
    metrics = requests.get(f"{live.base}/metrics", timeout=10).text
    figures = {**load.figures(), **invariants, "faults": 1, "replays_checked": replays,
               "evicted_keys": stats.get("evicted_keys", 0), "maxmemory": "3mb", "policy": policy,
               "idempotency_backend_errors": sample(metrics, "sofiia_idempotency_backend_errors_total"),
               "ratelimit_backend_errors": sample(metrics, "sofiia_ratelimit_backend_errors_total")}  # fmt: skip
    if policy == "allkeys-lru":
        assert figures["evicted_keys"] > 0
    else:
        # Over its limit, Redis refused the idempotency records (the database guard held)...
        assert figures["idempotency_backend_errors"] > 0
        # ...but never the limiter's script, whose first write frees memory: limits stayed on.
        assert figures["ratelimit_backend_errors"] == 0
    record(f"redis_full_{policy}", figures)


def _idempotency_record_bytes(redis_server) -> int:
    client = redis_server.client()
    keys = list(client.scan_iter("sofiia-idem:*", count=1000))
    return int(client.memory_usage(keys[0])) if keys else 0


def test_an_idempotency_record_is_a_few_hundred_bytes_whatever_the_text(console, postgres, controlled_redis):
    redis_server = controlled_redis()
    live, token = start_with_operator(console, **stack_env(postgres, redis_server))
    (chat_id,) = new_chats(live, token, count=1)
    response = live.session(token).post(
        f"{live.base}/api/chats/{chat_id}/send",
        json={"text": "x" * 16_000},
        headers={"Idempotency-Key": f"big-{uuid.uuid4().hex}"},
        timeout=10,
    )
    assert response.status_code == 201
    size = _idempotency_record_bytes(redis_server)
    assert 0 < size < 1024, size
    record("idempotency_record_bytes", {"text_chars": 16_000, "redis_bytes": size})


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a size-capped filesystem needs root")
def test_a_full_disk_under_sqlite(console):
    mount = Path(tempfile.mkdtemp(prefix="sofiia-faults-disk-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], check=True)
    try:
        database = mount / "sofiia.sqlite3"
        env = {
            "DATABASE_URL": f"sqlite:///{database}",
            "SOFIIA_IDEMPOTENCY_BACKEND": "inmemory",
            "SOFIIA_RATE_LIMIT_BACKEND": "inmemory",
            "SOFIIA_DB_RETRY_SECONDS": "2",
            "GUNICORN_KEEPALIVE": "5",
        }
        live, token = start_with_operator(console, workers=1, **env)
        load = Load(live.base, token, new_chats(live, token), clients=4)
        filler = mount / "filler"
        with load.running(max_seconds=60):
            acknowledged_from_now(load, 10)
            try:
                with open(filler, "wb") as out:  # fill the disk to the last byte
                    while True:
                        out.write(b"\0" * 65536)
                        out.flush()
            except OSError:
                pass
            full = time.monotonic()
            wait_until(lambda: load.seen_error("database_unavailable"), 30, what="the full disk to be felt")
            filler.unlink()
            freed = time.monotonic()
            acknowledged_from_now(load, 10)  # the load recovers by itself
        live.stop()
        invariants = check_invariants(load, sqlite_rows(str(database)))
        figures = load.figures()
        assert figures["error_codes"].get("database_unavailable", 0) > 0  # the full disk was felt
        record("sqlite_disk_full", {**figures, **invariants, "faults": 1, "full_s": round(freed - full, 1)})
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        mount.rmdir()
