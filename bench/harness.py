"""What the benchmark suite runs things with: the console under gunicorn, the dev router,
wrk as the load generator, and the process statistics (CPU time, RSS) of all of them."""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

PROJECT = Path(__file__).resolve().parent.parent
WRK_DIR = Path(__file__).resolve().parent / "wrk"
SECRET_KEY = "benchmark-secret-key-" + "b" * 40
CHAIN_KEY = "bench:" + "benchmark-audit-chain-key-" * 2
# Limits stay on (their cost is what is measured) but never refuse a benchmark's send.
UNLIMITED = "1000000000/60"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def console_env(base: dict[str, str], **overrides: str) -> dict[str, str]:
    """The environment of a console in production shape: DEBUG off, JSON logs at info."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOFIIA_", "DJANGO_", "GUNICORN_", "PROMETHEUS_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": SECRET_KEY,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_SECURE_COOKIES": "0",
            "SOFIIA_AUDIT_CHAIN_KEY": CHAIN_KEY,
            "SOFIIA_LOG_LEVEL": "info",
            "SOFIIA_RATE_LIMIT_CHAT": UNLIMITED,
            "SOFIIA_RATE_LIMIT_OPERATOR": UNLIMITED,
            "SOFIIA_RATE_LIMIT_CHAT_CREATE": UNLIMITED,
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(base)
    env.update(overrides)
    return env


@contextmanager
def postgres_database(url: str) -> Iterator[str]:
    """The URL of a fresh database on the PostgreSQL server ``url`` names, dropped afterwards."""
    name = f"sofiia_bench_{uuid.uuid4().hex[:8]}"
    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {name}"], check=True)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=False)


@contextmanager
def scratch_database() -> Iterator[str]:
    """A fresh database for a benchmark: next to ``DATABASE_URL`` on PostgreSQL (dropped
    afterwards), else a temporary SQLite file."""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("postgres"):
        with postgres_database(url) as fresh:
            yield fresh
    else:
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench.sqlite3"


def children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its children that were waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(v) for v in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` (a gunicorn master) and its live children (its workers)."""
    return cpu_seconds(pid) + sum(cpu_seconds(child) for child in children_of(pid))


def largest_child_rss_mb(pid: int) -> float:
    """The largest RSS among ``pid``'s live children (a gunicorn master's workers)."""
    return max((rss_mb(child) for child in children_of(pid)), default=0.0)


def stop_process_group(proc: subprocess.Popen[bytes], *, timeout: float) -> None:
    """SIGTERM the group ``proc`` leads (started with ``start_new_session``); SIGKILL after ``timeout``."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _version(*args: str) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=10)
    except OSError:
        return "not installed"
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr) else "?"


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": f"{os.cpu_count()} × {cpu}",
        "memory": f"{mem_kb / 1024 / 1024:.0f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": _version("psql", "--version"),
        "redis": _version("redis-server", "--version"),
        "wrk": _version("wrk", "--version"),
    }


def machine_ticks() -> tuple[float, float]:
    """The machine's busy and total CPU time so far (all cores, /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / os.sysconf("SC_CLK_TCK"), sum(values) / os.sysconf("SC_CLK_TCK")


@contextmanager
def busy_cores(into: list[float]) -> Iterator[None]:
    """Appends to ``into`` how many of the machine's cores were busy, on average, in the block."""
    busy_before, total_before = machine_ticks()
    yield
    busy_after, total_after = machine_ticks()
    cores = os.cpu_count() or 1
    into.append(cores * (busy_after - busy_before) / max(total_after - total_before, 1e-9))


@dataclass
class Console:
    """One console instance: a gunicorn master with its workers, on its own port."""

    env: dict[str, str]
    workers: int = 2
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> Console:
        log_dir = Path(tempfile.mkdtemp(prefix="sofiia-bench-"))
        self.log_path = log_dir / "gunicorn.log"
        args = [
            sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "bench.wsgi:application",
            "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers),
        ]  # fmt: skip
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                args, cwd=PROJECT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{self.log_tail()}")
            try:
                up = requests.get(f"{self.base}/livez", timeout=2).status_code == 200
                if up and len(self.worker_pids()) == self.workers:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"gunicorn did not answer in {timeout} s:\n{self.log_tail()}")

    def worker_pids(self) -> list[int]:
        return children_of(self.proc.pid) if self.proc else []

    def cpu(self) -> float:
        """CPU seconds of the master and its live workers."""
        assert self.proc is not None
        return tree_cpu_seconds(self.proc.pid)

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path else ""

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_process_group(self.proc, timeout=30)
        self.proc = None
        if self.log_path is not None:
            shutil.rmtree(self.log_path.parent, ignore_errors=True)


@contextmanager
def running(*consoles: Console) -> Iterator[None]:
    try:
        for console in consoles:
            console.start()
        yield
    finally:
        for console in consoles:
            console.stop()


@dataclass(frozen=True)
class Load:
    """What one wrk run measured."""

    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[str, int]
    errors: dict[str, int]
    cpu_seconds: float  # wrk's own

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def count(self, *statuses: int) -> int:
        return sum(self.statuses.get(str(s), 0) for s in statuses)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "rate": round(self.rate, 1),
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
            "statuses": self.statuses,
            "errors": self.errors,
            "wrk_cpu_seconds": round(self.cpu_seconds, 2),
        }


def wrk(
    url: str,
    script: str,
    *,
    env: dict[str, str],
    seconds: float,
    connections: int = 8,
    threads: int = 2,
) -> Load:
    """Run wrk against ``url`` with ``bench/wrk/<script>.lua`` for ``seconds``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    run_env = {**os.environ, **env, "BENCH_WRK_DIR": str(WRK_DIR)}
    args = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
        "-s", str(WRK_DIR / f"{script}.lua"), url,
    ]  # fmt: skip
    done = subprocess.run(args, env=run_env, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH_JSON ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(lines[-1].removeprefix("BENCH_JSON "))
    return Load(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        statuses=data["statuses"],
        errors=data["errors"],
        cpu_seconds=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    )


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median with min and max, the way every figure of the suite is reported."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]
