#!/usr/bin/env python
"""What the audit hash chain costs on the send path.

Runs ``chats.services.message_send`` — the whole send path: the pending-message
transaction, the node call, the reply transaction with its ``message.send`` audit event —
in several worker processes at once, against a throwaway test database (created from
DATABASE_URL, dropped afterwards), in three variants:

* ``no audit``: ``audit_record`` replaced by a no-op (what the send costs without any audit);
* ``plain insert``: the event inserted in a savepoint with no chain and no lock (what
  ``audit_record`` was before the chain);
* ``hash chain``: the real ``audit_record`` (chain head row lock, hash, head update).

The node is the one thing stubbed: it answers at once, so the numbers are the
application's and the database's own, and the head lock is as contended as it can get.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/sofiia_bench python bench/audit_chain.py
    python bench/audit_chain.py --workers 1,4,8 --sends 300     # SQLite file database
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sofiia.settings")

import django  # noqa: E402

django.setup()

from django.db import connection, connections, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from audit.chain import canonical_details, chain_verify  # noqa: E402
from audit.models import AuditEvent  # noqa: E402
from chats import services as chat_services  # noqa: E402
from chats.models import Chat  # noqa: E402
from nodes.infer import InferResult  # noqa: E402

VARIANTS = ("no audit", "plain insert", "hash chain")


def _instant_infer(*, node: str, agent: str, body: dict[str, object], **kwargs: object) -> InferResult:
    return InferResult(response=f"{node}/{agent}: {body['prompt']}", model="bench", tokens_used=None, backend="bench")


def _no_audit(**kwargs: object) -> None:
    return None


def _plain_insert(*, actor: str, action: str, outcome: str = "success", target_type: str = "",
                  target_id: object = None, chat_id: int | None = None, details: object = None) -> None:  # fmt: skip
    # What audit_record was before the chain: a savepoint and an INSERT, no lock.
    with transaction.atomic():
        AuditEvent.objects.create(
            id=random.randrange(10**12, 2**62),
            ts=timezone.now(),
            actor=actor,
            action=action,
            outcome=outcome,
            target_type=target_type,
            target_id="" if target_id is None else str(target_id),
            chat_id=chat_id,
            details=canonical_details(details),
            prev_hash="",
            hash="",
        )


def _worker(variant: str, chat_id: int, sends: int, start_at: float, results: multiprocessing.Queue) -> None:
    chat_services.infer = _instant_infer
    if variant == "no audit":
        chat_services.audit_record = _no_audit
    elif variant == "plain insert":
        chat_services.audit_record = _plain_insert
    chat = Chat.objects.select_related("owner").get(pk=chat_id)
    operator = chat.owner
    chat_services.message_send(operator=operator, chat=chat, text="warm-up", idempotency_key=f"warm-{os.getpid()}")
    while time.time() < start_at:
        time.sleep(0.001)
    latencies = []
    for i in range(sends):
        started = time.perf_counter()
        chat_services.message_send(operator=operator, chat=chat, text=f"m{i}", idempotency_key=f"{os.getpid()}-{i}")
        latencies.append(time.perf_counter() - started)
    results.put((latencies, time.time()))
    connections.close_all()


def run(variant: str, workers: int, sends: int) -> dict[str, float]:
    chats = []
    for n in range(workers):
        operator = chat_services.operator_create(
            username=f"bench-{variant[:2]}-{workers}-{n}-{time.time_ns()}"
        ).operator
        chats.append(Chat.objects.create(owner=operator, title="bench", agent="echo", node="NODA1").pk)
    connections.close_all()  # children open their own connections
    context = multiprocessing.get_context("fork")
    results: multiprocessing.Queue = context.Queue()
    start_at = time.time() + 1.0 + 0.05 * workers
    processes = [context.Process(target=_worker, args=(variant, chat, sends, start_at, results)) for chat in chats]
    for process in processes:
        process.start()
    collected = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join()
    latencies = sorted(latency for batch, _ in collected for latency in batch)
    finished = max(end for _, end in collected)
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "p50": statistics.median(latencies) * 1000,
        "p95": quantiles[94] * 1000,
        "p99": quantiles[98] * 1000,
        "rate": len(latencies) / (finished - start_at),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,4,8", help="comma-separated worker process counts (default 1,4,8)")
    parser.add_argument("--sends", type=int, default=400, help="sends per worker (default 400)")
    args = parser.parse_args()
    levels = [int(level) for level in args.workers.split(",")]

    from django.test.utils import setup_test_environment

    setup_test_environment()
    if connection.vendor == "sqlite":
        connection.settings_dict["TEST"]["NAME"] = str(Path(tempfile.mkdtemp(prefix="sofiia-bench-")) / "bench.sqlite3")
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        version = ".".join(map(str, connection.get_database_version()))
        print(f"database: {connection.vendor} {version}; python {platform.python_version()}; {os.cpu_count()} CPUs; "
              f"{args.sends} sends per worker\n")  # fmt: skip
        print("| workers | variant | p50 ms | p95 ms | p99 ms | sends/s |")
        print("| ---: | --- | ---: | ---: | ---: | ---: |")
        for workers in levels:
            for variant in VARIANTS:
                result = run(variant, workers, args.sends)
                print(
                    f"| {workers} | {variant} | {result['p50']:.2f} | {result['p95']:.2f} | "
                    f"{result['p99']:.2f} | {result['rate']:,.0f} |",
                    flush=True,
                )
        report = chain_verify()
        print(f"\nchain after the runs: {'intact' if report.ok else report.broken}, {report.checked:,} chained events")
    finally:
        connections.close_all()
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
