"""The benchmark suite: the price of every guarantee, as ratios, with targets that gate a release.

    make bench                                  # both configurations, then the table
    .venv/bin/python bench/suite.py --quick     # a small run that checks the suite itself

Runs each configuration — SQLite with in-memory backends, PostgreSQL with Redis backends —
in a process of its own (``--child``), on a fresh database: the SQLite file in a temporary
directory, a PostgreSQL database created next to ``SOFIIA_BENCH_DATABASE_URL`` and dropped
after, Redis database ``SOFIIA_BENCH_REDIS_URL`` (default ``redis://127.0.0.1:6379/11``,
emptied first). Then it compares each figure with its target, writes
``bench/results/latest.json``, rewrites the table in ``docs/performance.md`` and exits 1 when
a target is missed by more than the noise margin. ``--quick`` runs the same code with small
counts; it, ``--rows``, ``--config`` and ``--prune-rate`` (row 4 with a paced prune) write neither
file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

RESULTS = PROJECT / "bench" / "results" / "latest.json"
DOC = PROJECT / "docs" / "performance.md"
TABLE_START = "<!-- bench:table:start -->"
TABLE_END = "<!-- bench:table:end -->"
CONFIGS = {"sqlite": "SQLite, in-memory backends", "postgres": "PostgreSQL + Redis"}
# Ratios of interleaved rounds moved by up to about 10 % between whole runs on this machine
# (docs/performance.md); a target is a failed gate only when missed by more than this.
NOISE_MARGIN = 0.15

FULL = {
    "rounds": 3,
    "seconds": 5.0,
    "messages": 1_000_000,
    "page_samples": 15,
    "audit_events": 1_000_000,
    "sends_first": 2_000,
    "sends_last": 20_000,
    "requests_total": 100_000,
    "scale_rounds": 3,
    "prune_window": 2.0,
}
QUICK = {
    "rounds": 1,
    "seconds": 2.0,
    "messages": 5_000,
    "page_samples": 3,
    "audit_events": 5_000,
    "sends_first": 200,
    "sends_last": 600,
    "requests_total": 2_000,
    "scale_rounds": 1,
    "prune_window": 1.0,
}


# --- Targets ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    row: int
    measure: str
    bound: float
    at_least: bool  # True: the figure must be >= bound; False: <= bound
    unit: str  # "×", "ms", "/s"
    figure: Callable[[dict[str, Any]], tuple[float, str] | None]

    @property
    def goal(self) -> str:
        return f"{'≥' if self.at_least else '≤'} {_number(self.bound, self.unit)}"

    def verdict(self, value: float) -> str:
        """``met``, ``within noise`` (missed by no more than the margin) or ``not met``."""
        if (value >= self.bound) if self.at_least else (value <= self.bound):
            return "met"
        slack = self.bound * (1 - NOISE_MARGIN) if self.at_least else self.bound * (1 + NOISE_MARGIN)
        return "within noise" if ((value >= slack) if self.at_least else (value <= slack)) else "not met"


def _number(value: float, unit: str) -> str:
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit == "ms":
        return f"{value:.1f} ms"
    return f"{value:.2f}×"


def _spread(figure: dict[str, float], unit: str = "×") -> tuple[float, str]:
    text = f"{_number(figure['median'], unit)} ({_number(figure['min'], unit)}–{_number(figure['max'], unit)})"
    return figure["median"], text


def _get(results: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(results, dict) or key not in results:
            return None
        results = results[key]
    return results


def _depths(results: dict[str, Any]) -> tuple[float, str] | None:
    ratios = _get(results, "deep_pages", "depth_ratio")
    if not ratios:
        return None
    worst = max(ratios.values())
    return worst, "worst " + _number(worst, "×") + " (" + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()) + ")"


def _offset(results: dict[str, Any]) -> tuple[float, str] | None:
    # The query alone: through the API, both pages also pay the same ~8 ms of request.
    query = _get(results, "deep_pages", "query_offset_ratio", "50%")
    api = _get(results, "deep_pages", "offset_ratio", "50%")
    if query is None:
        return None
    return query, f"query {query:,.0f}× slower (through the API {api:.0f}×)"


def _optional(figure: Any, unit: str = "×") -> tuple[float, str] | None:
    return None if figure is None else _spread(figure, unit)


def _scalar(value: Any, unit: str) -> tuple[float, str] | None:
    return None if value is None else (value, _number(value, unit))


TARGETS = [
    Target(1, "full send stack vs bare endpoint: throughput", 0.7, True, "×",
           lambda r: _optional(_get(r, "send_stack", "throughput_ratio"))),
    Target(1, "full send stack vs bare endpoint: p50", 1.4, False, "×",
           lambda r: _optional(_get(r, "send_stack", "p50_ratio"))),
    Target(2, "idempotent replay vs fresh send: p50", 0.3, False, "×",
           lambda r: _optional(_get(r, "send_stack", "replay_p50_ratio"))),
    Target(3, "page at 10/50/90/100 % depth of 1,000,000 messages vs the first page", 1.5, False, "×", _depths),
    Target(3, "the same page by OFFSET at 50 % depth vs keyset (the query)", 20, True, "×", _offset),
    Target(4, "send p99 while prune_audit deletes 1,000,000 events vs without", 1.5, False, "×",
           lambda r: _optional(_get(r, "audit", "p99_ratio"))),
    Target(5, "/metrics scrape of all workers after 100,000 requests, p50", 100, False, "ms",
           lambda r: _scalar(_get(r, "memory", "scrape_ms", "p50"), "ms")),
    Target(6, "worker RSS after 20,000 sends vs after 2,000", 1.1, False, "×",
           lambda r: _scalar(_get(r, "memory", "rss_ratio"), "×")),
    Target(7, "two instances vs one, node answering in 50 ms: throughput", 1.6, True, "×",
           lambda r: _optional(_get(r, "scale", "ratio"))),
    Target(8, "verify_audit on 1,000,000 events", 100_000, True, "/s",
           lambda r: _scalar(_get(r, "audit", "verify", "rate"), "/s")),
    Target(9, "send carrying 20 earlier exchanges of 2 KB vs the same send with none: p50", 1.15, False, "×",
           lambda r: _optional(_get(r, "conversation", "p50_ratio"))),
    Target(10, "search of 1,000,000 messages for a rare phrase vs a chat's first page, p50", 3.0, False, "×",
           lambda r: _scalar(_get(r, "search", "rare_ratio"), "×")),
]  # fmt: skip


def evaluate(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per target and configuration that measured it."""
    rows = []
    for target in TARGETS:
        for config in CONFIGS:
            figure = target.figure(results.get(config, {}))
            if figure is None:
                continue
            value, text = figure
            rows.append(
                {
                    "row": target.row,
                    "measure": target.measure,
                    "config": config,
                    "target": target.goal,
                    "value": value,
                    "figure": text,
                    "verdict": target.verdict(value),
                }
            )
    return rows


def render_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| # | measure | target | " + " | ".join(CONFIGS.values()) + " |",
        "| --- | --- | --- | " + " | ".join("---" for _ in CONFIGS) + " |",
    ]
    seen: dict[tuple[int, str], dict[str, str]] = {}
    targets: dict[tuple[int, str], str] = {}
    for row in rows:
        key = (row["row"], row["measure"])
        seen.setdefault(key, {})[row["config"]] = f"{row['figure']} — **{row['verdict']}**"
        targets[key] = row["target"]
    for (number, measure), cells in seen.items():
        figures = " | ".join(cells.get(config, "not run") for config in CONFIGS)
        lines.append(f"| {number} | {measure} | {targets[number, measure]} | {figures} |")
    return "\n".join(lines)


def rewrite_doc(doc: str, table: str, header: str) -> str:
    """``doc`` with the text between the table markers replaced."""
    start, end = doc.index(TABLE_START) + len(TABLE_START), doc.index(TABLE_END)
    return doc[:start] + "\n" + header + "\n\n" + table + "\n" + doc[end:]


def gate_failures(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for row in rows if row["verdict"] == "not met"]


# --- One configuration (the child process) --------------------------------------------


@contextmanager
def _database(config: str) -> Iterator[dict[str, str]]:
    if config == "sqlite":
        directory = tempfile.mkdtemp(prefix="sofiia-bench-db-")
        try:
            yield {
                "DATABASE_URL": f"sqlite:///{directory}/bench.sqlite3",
                "SOFIIA_IDEMPOTENCY_BACKEND": "inmemory",
                "SOFIIA_RATE_LIMIT_BACKEND": "inmemory",
            }
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return
    from bench.harness import postgres_database

    admin = os.environ.get("SOFIIA_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("SOFIIA_BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
    redis = urlsplit(redis_url)
    db = (redis.path or "/0").lstrip("/") or "0"
    subprocess.run(
        ["redis-cli", "-h", redis.hostname or "127.0.0.1", "-p", str(redis.port or 6379), "-n", db, "FLUSHDB"],
        check=True,
        capture_output=True,
    )
    with postgres_database(admin) as url:
        yield {
            "DATABASE_URL": url,
            "SOFIIA_IDEMPOTENCY_BACKEND": "redis",
            "SOFIIA_RATE_LIMIT_BACKEND": "redis",
            "SOFIIA_REDIS_URL": redis_url,
        }


def run_config(
    config: str, sizes: dict[str, Any], rows: set[int], say: Callable[[str], None], prune_rate: int | None = None
) -> dict[str, Any]:
    from bench import harness
    from nodes.devrouter import DevRouter

    node = DevRouter(name="NODA1").start()
    results: dict[str, Any] = {"config": config}
    with _database(config) as db_env:
        console_env = harness.console_env({**db_env, "SOFIIA_NODES": f"NODA1={node.url}"})
        os.environ.update({k: v for k, v in console_env.items() if k.startswith(("SOFIIA_", "DJANGO_", "DATABASE"))})
        os.environ["SOFIIA_LOG_LEVEL"] = "warning"  # the consoles log; the suite's own setup need not
        import django

        django.setup()
        from django.core.management import call_command

        from bench.measures import (
            Setup,
            audit_pruning,
            audit_seeding,
            conversation_sends,
            deep_pages,
            memory_and_metrics,
            scale_out,
            search_pages,
            send_stack,
        )
        from chats.services import chat_create
        from operators.services import operator_create

        call_command("migrate", verbosity=0)
        seeded: dict[str, Any] = {}
        if rows & {4, 8}:
            say(f"[{config}] audit events for rows 4 and 8")
            seeded = audit_seeding(Setup(config, {}, "", [], [], say), count=sizes["audit_events"])
        created = operator_create(username="bench", with_token=True)
        assert created.token is not None
        operator = created.operator
        setup = Setup(
            config=config,
            console_env=console_env,
            token=created.token,
            chat_ids=[chat_create(operator=operator, title=f"bench {i}", agent="echo").pk for i in range(8)],
            slow_chat_ids=[chat_create(operator=operator, title=f"slow {i}", agent="slow0.05").pk for i in range(8)],
            say=say,
        )
        steps: list[tuple[set[int], str, Callable[[], dict[str, Any]]]] = [
            ({1, 2}, "send_stack", lambda: send_stack(setup, rounds=sizes["rounds"], seconds=sizes["seconds"])),
            ({3}, "deep_pages", lambda: deep_pages(setup, count=sizes["messages"], samples=sizes["page_samples"])),
            (
                {4, 8},
                "audit",
                lambda: audit_pruning(setup, seeded=seeded, seconds=sizes["prune_window"], prune_rate=prune_rate),
            ),
            (
                {5, 6},
                "memory",
                lambda: memory_and_metrics(
                    setup,
                    seconds=sizes["seconds"],
                    first=sizes["sends_first"],
                    last=sizes["sends_last"],
                    requests_total=sizes["requests_total"] if 5 in rows else 0,
                ),
            ),
            (
                {7},
                "scale",
                lambda: scale_out(setup, rounds=sizes["scale_rounds"], seconds=sizes["seconds"], connections=16),
            ),
            ({9}, "conversation", lambda: conversation_sends(setup, rounds=sizes["rounds"], seconds=sizes["seconds"])),
            ({10}, "search", lambda: search_pages(setup, count=sizes["messages"], samples=sizes["page_samples"])),
        ]
        for numbers, name, step in steps:
            if not numbers & rows:
                continue
            say(f"[{config}] {name} (rows {', '.join(map(str, sorted(numbers)))})")
            started = time.monotonic()
            results[name] = step()
            results[name]["wall_seconds"] = round(time.monotonic() - started, 1)
    node.stop()
    return results


# Rows each configuration runs: two instances sharing a database (7) are a PostgreSQL + Redis
# deployment, and the metrics scrape (5) does not depend on the database.
ROWS = {"sqlite": {1, 2, 3, 4, 6, 8, 9, 10}, "postgres": {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Small counts; writes neither results nor the doc.")
    parser.add_argument("--config", choices=list(CONFIGS), action="append", help="Only this configuration.")
    parser.add_argument("--rows", type=lambda v: {int(x) for x in v.split(",")}, help="Only these rows, e.g. 1,2.")
    parser.add_argument("--output", type=Path, help="Also write the raw results here (JSON).")
    parser.add_argument(
        "--prune-rate", type=int, help="Row 4 with `prune_audit --rate N` instead of an unpaced prune; not a record."
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    if args.child is not None:
        (config,) = args.config
        rows = ROWS[config] & (args.rows or ROWS[config])
        result = run_config(config, sizes, rows, say, prune_rate=args.prune_rate)
        args.child.write_text(json.dumps(result, indent=2, default=str))
        return 0

    if shutil.which("wrk") is None:
        say("wrk is not installed: `make bench` installs it (apt-get install wrk)")
        return 2
    started = time.monotonic()
    results: dict[str, Any] = {}
    for config in args.config or list(CONFIGS):
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            command = [sys.executable, __file__, "--config", config, "--child", out.name]
            if args.quick:
                command.append("--quick")
            if args.rows:
                command += ["--rows", ",".join(map(str, sorted(args.rows)))]
            if args.prune_rate:
                command += ["--prune-rate", str(args.prune_rate)]
            subprocess.run(command, cwd=PROJECT, check=True)
            results[config] = json.loads(Path(out.name).read_text())
    rows = evaluate(results)
    if args.output is not None:
        args.output.write_text(json.dumps({"rows": rows, "results": results}, indent=2, default=str) + "\n")
    table = render_table(rows)
    took = time.monotonic() - started
    print(table)
    failures = gate_failures(rows)
    print(f"\n{len(rows) - len(failures)} of {len(rows)} figures met or within the noise margin "
          f"({NOISE_MARGIN:.0%}); the suite took {took / 60:.1f} min.")  # fmt: skip
    # Only a whole run (every row, both configurations, full sizes) is a record.
    if not (args.quick or args.rows or args.config or args.prune_rate):
        when = datetime.now(UTC)
        from bench.harness import machine

        about = machine()
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(
            json.dumps(
                {
                    "recorded_at": when.isoformat(timespec="seconds"),
                    "machine": about,
                    "minutes": round(took / 60, 1),
                    "noise_margin": NOISE_MARGIN,
                    "sizes": sizes,
                    "rows": rows,
                    "results": results,
                },
                indent=2,
                default=str,
            )
            + "\n"
        )
        header = (
            f"Recorded {when:%Y-%m-%d %H:%M} UTC by `make bench` in {took / 60:.1f} min on {about['cpu']}, "
            f"{about['memory']}, {about['os']}, Python {about['python']}, SQLite {about['sqlite']}, "
            f"{about['postgresql']}, {about['redis'].split(' sha=')[0]}, {about['wrk'].split(' [')[0]}. "
            f"Each figure: median of the rounds' ratios (min–max); noise margin {NOISE_MARGIN:.0%}."
        )
        DOC.write_text(rewrite_doc(DOC.read_text(), table, header))
        print(f"wrote {RESULTS.relative_to(PROJECT)} and the table in {DOC.relative_to(PROJECT)}")
    for row in failures:
        print(f"MISSED row {row['row']} [{row['config']}]: {row['measure']}: {row['figure']}, target {row['target']}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
