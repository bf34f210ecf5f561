"""The worker model under slow nodes: gunicorn's gevent workers against the former gthread
workers, side by side in one run, on PostgreSQL + Redis.

    .venv/bin/python bench/worker_model.py [--sends 1000] [--agent-seconds 5] [--json PATH]

For each model, one instance (2 workers, production settings) receives ``--sends`` sends at
once, spread over 50 operators, to an agent that answers after ``--agent-seconds``. Measured:
the time until the last send is answered, divided by the agent's time (1.0 would be
perfect); ``/readyz`` latency p50/p99 while the sends wait; the largest worker RSS; the most
PostgreSQL connections the instance held, against its pools (2 x ``SOFIIA_DB_POOL_MAX``).
A model that cannot finish within ``--deadline`` seconds is reported with how far it got.

The load comes from one gevent process of 1,000 greenlets (cheap while they wait, like the
server); ``/readyz`` is probed every 100 ms from a process of its own; the dev router answers
from a thread per call with a 1,024-deep listen backlog. All run on the same 2-core machine
as the server, so the figures are upper bounds of the
console's own cost. Results go to stdout as a table and, with ``--json``, to a file.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import psycopg  # noqa: E402
import requests  # noqa: E402
from gevent.pool import Pool  # noqa: E402

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from bench.harness import (  # noqa: E402
    cpu_seconds,
    free_port,
    largest_child_rss_mb,
    machine,
    postgres_database,
    stop_process_group,
    tree_cpu_seconds,
)

PYTHON = sys.executable
OPERATORS = 50
POOL_MAX = 20
WORKERS = 2


@dataclass
class ModelResult:
    model: str
    sends: int
    agent_seconds: float
    answered: int = 0
    created: int = 0
    completion_seconds: float | None = None
    health_ms: list[float] = field(default_factory=list)
    health_timeouts: int = 0
    worker_rss_mb: float = 0.0
    pg_connections: int = 0
    # CPU seconds spent during the load: by the instance (master and workers), by the node,
    # and by this load generator.
    cpu_server: float = 0.0
    cpu_node: float = 0.0
    cpu_client: float = 0.0
    pool_limit: int = WORKERS * POOL_MAX

    @property
    def completion_ratio(self) -> float | None:
        return None if self.completion_seconds is None else self.completion_seconds / self.agent_seconds

    def health(self, quantile: float) -> float | None:
        """A quantile of the probes' latency; ``inf`` when it falls on a probe that timed out."""
        ordered = sorted(self.health_ms) + [float("inf")] * self.health_timeouts
        if not ordered:
            return None
        return ordered[min(len(ordered) - 1, int(len(ordered) * quantile))]


def environment(db_url: str, node_url: str, model: str, sends: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOFIIA_", "DJANGO_", "DATABASE_URL", "GUNICORN_"))}
    env.update(
        DATABASE_URL=f"{db_url}?application_name=sofiia-bench-{model}",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="bench-" + "x" * 50,
        SOFIIA_NODES=f"NODA1={node_url}",
        SOFIIA_IDEMPOTENCY_BACKEND="redis",
        SOFIIA_RATE_LIMIT_BACKEND="redis",
        SOFIIA_REDIS_URL=os.environ.get("SOFIIA_REDIS_URL", "redis://127.0.0.1:6379/10"),
        SOFIIA_RATE_LIMIT_CHAT="1000000/60",
        SOFIIA_RATE_LIMIT_OPERATOR="1000000/60",
        SOFIIA_DB_POOL_MAX=str(POOL_MAX),
        SOFIIA_NODE_MAX_INFLIGHT=str(max(sends, 1)),
        SOFIIA_INFER_TIMEOUT="120",
        SOFIIA_LOG_LEVEL="warning",
        GUNICORN_WORKER_CLASS=model,
        GUNICORN_WORKERS=str(WORKERS),
    )
    return env


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([PYTHON, "manage.py", *args], cwd=PROJECT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


@contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            args, cwd=PROJECT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc
    finally:
        stop_process_group(proc, timeout=15)


def wait_for(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer 200 within {timeout} s")


def own_cpu_seconds() -> float:
    usage = os.times()
    return usage.user + usage.system


# The /readyz prober is a process of its own, not a greenlet of the load generator: when the
# thousand sends' answers arrive together, the generator's event loop is busy with them and a
# probe living in it would be read late, timing the client rather than the server.
_PROBER = """
import sys, time, requests
url, log = sys.argv[1], open(sys.argv[2], "a", buffering=1)
session = requests.Session()
while True:
    started = time.monotonic()
    try:
        session.get(url, timeout=10)
        log.write(f"{(time.monotonic() - started) * 1000:.3f}\\n")
    except requests.RequestException:
        log.write("timeout\\n")
    time.sleep(0.1)
"""


def start_prober(url: str, log: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """Probe ``url`` every 100 ms from a process of its own; the first probe is answered on return."""
    log.unlink(missing_ok=True)
    proc = subprocess.Popen([PYTHON, "-c", _PROBER, url, str(log)])
    deadline = time.monotonic() + 30
    while not (log.exists() and log.read_text()) and time.monotonic() < deadline:
        gevent.sleep(0.05)
    log.write_text("")  # the probes during the load only (the prober appends)
    return proc, log


def stop_prober(prober: tuple[subprocess.Popen[bytes], Path]) -> tuple[list[float], int]:
    """Stop the prober; the latencies it measured (ms) and how many probes timed out."""
    proc, log = prober
    proc.terminate()
    proc.wait(10)
    lines = log.read_text().split()
    return [float(line) for line in lines if line != "timeout"], lines.count("timeout")


def run_model(
    model: str, args: argparse.Namespace, db_url: str, node: subprocess.Popen[bytes], node_url: str, work: Path
) -> ModelResult:
    env = environment(db_url, node_url, model, args.sends)
    tokens = []
    for index in range(OPERATORS):
        out = manage(env, "create_operator", f"{model}-op{index}", "--token")
        tokens.append(out.strip().splitlines()[-1])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    result = ModelResult(model=model, sends=args.sends, agent_seconds=args.agent_seconds)
    gunicorn = [
        PYTHON,
        "-m",
        "gunicorn",
        "-c",
        "gunicorn.conf.py",
        "sofiia.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
    ]
    with process(gunicorn, env, work / f"gunicorn-{model}.log") as server:
        wait_for(f"{base}/readyz")
        agent = f"slow{args.agent_seconds:g}"
        chats = []
        for token in tokens:
            reply = requests.post(
                f"{base}/api/chats",
                json={"title": "bench", "agent": agent},
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            chats.append((token, reply.json()["id"]))

        done = gevent.event.Event()
        statuses: list[int] = []

        def send(index: int) -> None:
            token, chat_id = chats[index % len(chats)]
            try:
                reply = requests.post(
                    f"{base}/api/chats/{chat_id}/send",
                    json={"text": f"bench {index}"},
                    headers={"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex},
                    timeout=args.deadline + 30,
                )
                statuses.append(reply.status_code)
            except requests.RequestException:
                statuses.append(0)

        def sample() -> None:
            with psycopg.connect(db_url, autocommit=True) as watcher:
                while not done.is_set():
                    row = watcher.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [f"sofiia-bench-{model}"]
                    ).fetchone()
                    result.pg_connections = max(result.pg_connections, row[0] if row else 0)
                    result.worker_rss_mb = max(result.worker_rss_mb, largest_child_rss_mb(server.pid))
                    gevent.sleep(0.2)

        prober = start_prober(f"{base}/readyz", work / f"readyz-{model}.log")
        helpers = [gevent.spawn(sample)]
        pool = Pool(args.sends)
        cpu_before = (tree_cpu_seconds(server.pid), cpu_seconds(node.pid), own_cpu_seconds())
        started = time.monotonic()
        for index in range(args.sends):
            pool.spawn(send, index)
        finished = pool.join(timeout=args.deadline)
        elapsed = time.monotonic() - started
        result.cpu_server = tree_cpu_seconds(server.pid) - cpu_before[0]
        result.cpu_node = cpu_seconds(node.pid) - cpu_before[1]
        result.cpu_client = own_cpu_seconds() - cpu_before[2]
        done.set()
        result.health_ms, result.health_timeouts = stop_prober(prober)
        gevent.joinall(helpers, timeout=15)
        pool.kill(block=True, timeout=5)
        result.answered = len(statuses)
        result.created = statuses.count(201)
        if finished and result.created == args.sends:
            result.completion_seconds = elapsed
    return result


def fmt(value: float | None, pattern: str, missing: str) -> str:
    if value == float("inf"):
        return "> 10000 (timed out)"
    return missing if value is None else pattern.format(value)


def table(results: list[ModelResult], deadline: float) -> str:
    header = "| measure | goal | " + " | ".join(r.model for r in results) + " |"
    rule = "| --- | --- | " + " | ".join("---" for _ in results) + " |"
    rows = [
        ("sends answered 201", "all", [f"{r.created} of {r.sends}" for r in results]),
        (
            "completion time ÷ agent time",
            "≤ 1.5",
            [fmt(r.completion_ratio, "{:.2f}", f"> {deadline / r.agent_seconds:.0f} (unfinished)") for r in results],
        ),
        ("/readyz p50 during the load, ms", "", [fmt(r.health(0.5), "{:.0f}", "—") for r in results]),
        ("/readyz p99 during the load, ms", "≤ 100", [fmt(r.health(0.99), "{:.0f}", "—") for r in results]),
        ("/readyz probes timed out (10 s)", "0", [str(r.health_timeouts) for r in results]),
        ("largest worker RSS, MB", "≤ 300", [f"{r.worker_rss_mb:.0f}" for r in results]),
        (
            "PostgreSQL connections held (pool limit)",
            "≤ pools",
            [f"{r.pg_connections} ({r.pool_limit})" for r in results],
        ),
        (
            "CPU seconds: instance / node / load generator",
            "",
            [f"{r.cpu_server:.1f} / {r.cpu_node:.1f} / {r.cpu_client:.1f}" for r in results],
        ),
    ]
    lines = [header, rule]
    lines += [f"| {name} | {goal} | " + " | ".join(cells) + " |" for name, goal, cells in rows]
    return "\n".join(lines)


def _finite(value: float | None) -> float | str | None:
    return "timed out" if value == float("inf") else value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sends", type=int, default=1000, help="sends in flight at once (default 1000)")
    parser.add_argument("--agent-seconds", type=float, default=5.0, help="how long the agent takes (default 5)")
    parser.add_argument("--deadline", type=float, default=60.0, help="seconds a model gets to answer all (default 60)")
    parser.add_argument("--models", default="gevent,gthread", help="comma-separated (default gevent,gthread)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    admin_url = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")

    work = Path(tempfile.mkdtemp(prefix="sofiia-bench-"))
    node_port = free_port()
    node_env = {**os.environ, "DJANGO_DEBUG": "1"}
    router = [PYTHON, "manage.py", "run_dev_router", "--port", str(node_port), "--name", "NODA1"]
    results = []
    with postgres_database(admin_url) as db_url, process(router, node_env, work / "router.log") as node:
        wait_for(f"http://127.0.0.1:{node_port}/health")
        manage(environment(db_url, "http://127.0.0.1:1", "gevent", args.sends), "migrate", "--noinput", "-v0")
        for model in args.models.split(","):
            print(f"running {model}: {args.sends} sends to a {args.agent_seconds:g}-s agent ...", file=sys.stderr)
            results.append(run_model(model, args, db_url, node, f"http://127.0.0.1:{node_port}", work))
    print(table(results, args.deadline))
    print(f"\nmachine: {machine()}")
    if args.json:
        payload = {
            "machine": machine(),
            "sends": args.sends,
            "agent_seconds": args.agent_seconds,
            "results": [
                {
                    **{k: v for k, v in asdict(r).items() if k != "health_ms"},
                    "completion_ratio": r.completion_ratio,
                    "health_p50_ms": _finite(r.health(0.5)),
                    "health_p99_ms": _finite(r.health(0.99)),
                    "health_answered_median_ms": statistics.median(r.health_ms) if r.health_ms else None,
                }
                for r in results
            ],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
