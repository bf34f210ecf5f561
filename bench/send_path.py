"""Benchmark of the send path under gunicorn: latency and throughput of first sends and
replays, per backend. Prints a markdown table; results are recorded in bench/RESULTS.md.

    .venv/bin/python bench/send_path.py                       # SQLite + inmemory, then Redis
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/sofiia_bench .venv/bin/python bench/send_path.py

It creates its own database (a temporary SQLite file, or a fresh PostgreSQL database next to
the one DATABASE_URL names), its own dev router in-process and its own gunicorn console, and
sends only to 127.0.0.1. The numbers depend on the machine: compare runs made on the same one.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from nodes.devrouter import DevRouter  # noqa: E402
from tests.live import free_port  # noqa: E402


@dataclass
class Result:
    label: str
    count: int
    seconds: float
    latencies: list[float]

    def row(self) -> str:
        ordered = sorted(self.latencies)
        p50 = statistics.median(ordered) * 1000
        p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000
        return f"| {self.label} | {self.count} | {self.count / self.seconds:.0f} | {p50:.1f} | {p95:.1f} |"


@contextmanager
def database() -> Iterator[str]:
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("postgres"):
        name = f"sofiia_bench_{uuid.uuid4().hex[:8]}"
        parts = urlsplit(url)
        admin = urlunsplit(parts._replace(path="/postgres"))
        subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {name}"], check=True)
        try:
            yield urlunsplit(parts._replace(path=f"/{name}"))
        finally:
            subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=False)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench.sqlite3"


def environment(db_url: str, router: DevRouter, backend: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOFIIA_", "DJANGO_", "DATABASE_URL"))}
    env.update(
        DATABASE_URL=db_url,
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="bench-" + "x" * 50,
        SOFIIA_NODES=f"NODA1={router.url}",
        SOFIIA_IDEMPOTENCY_BACKEND=backend,
        SOFIIA_RATE_LIMIT_BACKEND=backend,
        SOFIIA_REDIS_URL=os.environ.get("SOFIIA_REDIS_URL", "redis://127.0.0.1:6379/10"),
        SOFIIA_RATE_LIMIT_CHAT="1000000/60",
        SOFIIA_RATE_LIMIT_OPERATOR="1000000/60",
        SOFIIA_LOG_LEVEL="warning",
    )
    return env


def manage(env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=PROJECT, env=env, check=True, capture_output=True, text=True
    ).stdout


@contextmanager
def console(env: dict[str, str], workers: int) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "sofiia.wsgi:application",
         "--bind", f"127.0.0.1:{port}", "--workers", str(workers)],
        cwd=PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/api/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("console did not start")
            time.sleep(0.2)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def run(label: str, requests_to_send: list[tuple[str, dict[str, str], dict[str, str]]], concurrency: int) -> Result:
    sessions = [requests.Session() for _ in range(concurrency)]

    def one(index: int) -> float:
        url, headers, body = requests_to_send[index]
        started = time.perf_counter()
        response = sessions[index % concurrency].post(url, json=body, headers=headers, timeout=60)
        elapsed = time.perf_counter() - started
        if response.status_code != 201:
            raise RuntimeError(f"{label}: {response.status_code} {response.text[:200]}")
        return elapsed

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        latencies = list(pool.map(one, range(len(requests_to_send))))
    return Result(label, len(requests_to_send), time.perf_counter() - started, latencies)


def bench_backend(backend: str, *, sends: int, concurrency: int, workers: int) -> list[Result]:
    router = DevRouter("NODA1").start()
    try:
        with database() as db_url:
            env = environment(db_url, router, backend)
            manage(env, "migrate", "--noinput")
            token = manage(env, "create_operator", "bench", "--token").strip().splitlines()[-1]
            with console(env, workers) as base:
                auth = {"Authorization": f"Bearer {token}"}
                chat = requests.post(
                    f"{base}/api/chats", json={"title": "b", "agent": "echo"}, headers=auth, timeout=30
                )
                url = f"{base}/api/chats/{chat.json()['id']}/send"
                keys = [uuid.uuid4().hex for _ in range(sends)]
                firsts = [(url, {**auth, "Idempotency-Key": k}, {"text": f"bench {k}"}) for k in keys]
                results = [run(f"{backend}: first sends, 1 at a time", firsts[: sends // 4], 1)]
                results.append(
                    run(f"{backend}: first sends, {concurrency} at a time", firsts[sends // 4 :], concurrency)
                )
                results.append(run(f"{backend}: replays, {concurrency} at a time", firsts, concurrency))
                return results
    finally:
        router.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sends", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backend", choices=["inmemory", "redis"], action="append")
    args = parser.parse_args()
    db = "PostgreSQL" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "SQLite"
    print(f"Send path, {db}, gunicorn {args.workers} workers x 4 threads, dev router on loopback\n")
    print("| scenario | requests | req/s | p50 ms | p95 ms |")
    print("| --- | --- | --- | --- | --- |")
    for backend in args.backend or ["inmemory", "redis"]:
        for result in bench_backend(backend, sends=args.sends, concurrency=args.concurrency, workers=args.workers):
            print(result.row(), flush=True)


if __name__ == "__main__":
    main()
