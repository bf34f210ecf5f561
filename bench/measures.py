"""The benchmark's measures, run in one process per configuration (``bench/suite.py``
starts it): each returns the raw figures of its rows; the suite compares them with the
targets. Every comparison is of two things measured side by side in the same run, in
interleaved rounds."""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from bench.harness import PROJECT, Console, Load, busy_cores, percentile, rss_mb, running, spread, wrk
from bench.profile import profile_under

Progress = Callable[[str], None]


@dataclass
class Setup:
    """One configuration's database, node and operator, as the measures share them."""

    config: str
    console_env: dict[str, str]
    token: str
    chat_ids: list[int]
    slow_chat_ids: list[int]
    say: Progress

    def console(self, workers: int = 2, **overrides: str) -> Console:
        return Console(env={**self.console_env, **overrides}, workers=workers)


def _send_env(
    setup: Setup, chat_ids: list[int], *, bare: bool = False, mode: str = "fresh", run: str, text_bytes: int = 0
) -> dict[str, str]:
    prefix = "/bench/bare/chats" if bare else "/api/chats"
    return {
        "BENCH_TOKEN": setup.token,
        "BENCH_PATHS": ",".join(f"{prefix}/{chat_id}/send" for chat_id in chat_ids),
        "BENCH_MODE": mode,
        "BENCH_RUN": run,
        "BENCH_TEXT_BYTES": str(text_bytes),
    }


def _only_created(load: Load, what: str) -> None:
    if load.count(201) != load.requests or any(load.errors.values()):
        raise RuntimeError(f"{what}: not every send was answered 201: {load.statuses}, errors {load.errors}")


def send_stack(setup: Setup, *, rounds: int, seconds: float) -> dict[str, Any]:
    """Rows 1 and 2: the full send against the bare one, a replay against a fresh send."""
    console = setup.console(workers=2)
    run = uuid.uuid4().hex[:8]
    with running(console):
        url = console.base
        # Warm-up: connections, caches, the replay keys stored once.
        wrk(url, "send", env=_send_env(setup, setup.chat_ids, run=f"{run}-warm"), seconds=2)
        wrk(url, "send", env=_send_env(setup, setup.chat_ids, bare=True, run=f"{run}-warm-bare"), seconds=2)
        wrk(url, "send", env=_send_env(setup, setup.chat_ids, mode="replay", run=f"{run}-replay"), seconds=2)
        variants: dict[str, Callable[[int], dict[str, str]]] = {
            "full": lambda r: _send_env(setup, setup.chat_ids, run=f"{run}-full-{r}"),
            "bare": lambda r: _send_env(setup, setup.chat_ids, bare=True, run=f"{run}-bare-{r}"),
            "replay": lambda r: _send_env(setup, setup.chat_ids, mode="replay", run=f"{run}-replay"),
        }
        results: dict[str, list[Load]] = {name: [] for name in variants}
        server_cpu: dict[str, list[float]] = {name: [] for name in variants}
        order = list(variants)
        for r in range(rounds):
            for name in order[r % 3 :] + order[: r % 3]:
                cpu_before = console.cpu()
                load = wrk(url, "send", env=variants[name](r), seconds=seconds)
                server_cpu[name].append((console.cpu() - cpu_before) / load.seconds)
                _only_created(load, f"send stack, {name}")
                results[name].append(load)
                setup.say(f"  round {r + 1}/{rounds} {name:6} {load.rate:7.1f}/s p50 {load.p50_ms:6.2f} ms")
        # Where a send's and a replay's time goes, for the doc (and for rows 1 and 2 when not met).
        profile = {
            name: profile_under(console, seconds, lambda env=env: wrk(url, "send", env=env, seconds=seconds))
            for name, env in (
                ("full", _send_env(setup, setup.chat_ids, run=f"{run}-profile")),
                ("replay", _send_env(setup, setup.chat_ids, mode="replay", run=f"{run}-replay")),
            )
        }
    full, bare, replay = results["full"], results["bare"], results["replay"]
    return {
        "throughput_ratio": spread([f.rate / b.rate for f, b in zip(full, bare, strict=True)]),
        "p50_ratio": spread([f.p50_ms / b.p50_ms for f, b in zip(full, bare, strict=True)]),
        "replay_p50_ratio": spread([r.p50_ms / f.p50_ms for r, f in zip(replay, full, strict=True)]),
        "rounds": {name: [load.as_dict() for load in loads] for name, loads in results.items()},
        "server_cores_busy": {name: spread(values) for name, values in server_cpu.items()},
        "wrk_cores_busy": spread([load.cpu_seconds / load.seconds for loads in results.values() for load in loads]),
        "connections": 8,
        "profile": profile,
    }


CONTEXT_TURNS = 20
CONTEXT_TEXT_BYTES = 2048


def conversation_sends(setup: Setup, *, rounds: int, seconds: float) -> dict[str, Any]:
    """Row 9: a send that carries 20 earlier exchanges of 2 KB each against the same send with
    none (the chat's ``context_turns`` 0), both sending 2 KB texts, in interleaved rounds.

    Each chat starts with 20 delivered exchanges of 2 KB; every send adds another, so a send
    in the context chats always carries the newest 20 (the budget is raised to fit them)."""
    from chats.models import Chat, Message
    from chats.services import chat_create
    from operators.models import ApiToken

    operator = ApiToken.objects.get(prefix=setup.token[: ApiToken.PREFIX_LENGTH]).user
    with_context = [
        chat_create(operator=operator, title=f"context {i}", agent="echo", context_turns=CONTEXT_TURNS).pk
        for i in range(8)
    ]
    without = [
        chat_create(operator=operator, title=f"no context {i}", agent="echo", context_turns=0).pk for i in range(8)
    ]
    filler = "y" * (CONTEXT_TEXT_BYTES - 16)
    for chat in Chat.objects.filter(pk__in=with_context + without):
        for turn in range(CONTEXT_TURNS):
            text = f"earlier turn {turn:03d} {filler}"
            question = Message.objects.create(
                chat=chat, role="operator", text=text, node=chat.node, status="delivered", operator=operator,
                idempotency_key=f"context-{chat.pk}-{turn}", attempts=1,
            )  # fmt: skip
            Message.objects.create(
                chat=chat, role="agent", text=f"NODA1/echo: {text}", node=chat.node, status="delivered",
                reply_to=question,
            )  # fmt: skip
    budget = str(CONTEXT_TURNS * 3 * (CONTEXT_TEXT_BYTES + 64))
    console = setup.console(workers=2, SOFIIA_CONTEXT_MAX_CHARS=budget)
    run = uuid.uuid4().hex[:8]
    variants = {
        "context": lambda r: _send_env(setup, with_context, run=f"{run}-ctx-{r}", text_bytes=CONTEXT_TEXT_BYTES),
        "none": lambda r: _send_env(setup, without, run=f"{run}-none-{r}", text_bytes=CONTEXT_TEXT_BYTES),
    }
    results: dict[str, list[Load]] = {name: [] for name in variants}
    with running(console):
        for warm_up in variants.values():
            wrk(console.base, "send", env=warm_up(-1), seconds=2)
        order = list(variants)
        for r in range(rounds):
            for name in order[r % 2 :] + order[: r % 2]:
                load = wrk(console.base, "send", env=variants[name](r), seconds=seconds)
                _only_created(load, f"conversation sends, {name}")
                results[name].append(load)
                setup.say(f"  round {r + 1}/{rounds} {name:7} {load.rate:7.1f}/s p50 {load.p50_ms:6.2f} ms")
    context, none = results["context"], results["none"]
    return {
        "p50_ratio": spread([c.p50_ms / n.p50_ms for c, n in zip(context, none, strict=True)]),
        "throughput_ratio": spread([c.rate / n.rate for c, n in zip(context, none, strict=True)]),
        "rounds": {name: [load.as_dict() for load in loads] for name, loads in results.items()},
        "turns": CONTEXT_TURNS,
        "text_bytes": CONTEXT_TEXT_BYTES,
    }


def search_pages(setup: Setup, *, count: int, samples: int) -> dict[str, Any]:
    """Row 10: ``GET /api/search`` over a chat of ``count`` messages (seeded by row 3, or here)
    against the first page of that chat, through the API, interleaved; the query plans.

    The gated query is a selective one (a phrase a handful of messages hold), as an operator
    searches for a name or a number; a query that every message matches is reported beside it."""
    from bench.seeding import ProgressTicker, seed_chat_messages
    from chats.models import Chat, Message
    from chats.selectors import message_search_for_operator

    chat = Chat.objects.get(pk=setup.chat_ids[0])
    if Message.objects.filter(chat=chat).count() < count:
        seed_chat_messages(chat, count, on_progress=ProgressTicker("messages"))
    total = Message.objects.filter(chat=chat).count()
    rare = f"question {(total // 2) // 2 * 2}"
    queries = {"rare": rare, "common": "seeded answer"}
    analyze = {"analyze": True} if setup.config == "postgres" else {}
    plans = {
        name: message_search_for_operator(operator=chat.owner, query=query)[:51].explain(**analyze)
        for name, query in queries.items()
    }
    console = setup.console(workers=1)
    urls = {"first page": f"/api/chats/{chat.pk}/messages?limit=50"}
    urls.update({f"search {name}": f"/api/search?limit=50&q={requests.utils.quote(q)}" for name, q in queries.items()})
    times: dict[str, list[float]] = {name: [] for name in urls}
    with running(console), requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {setup.token}"
        for url in urls.values():
            for _ in range(2):
                _timed_get(session, console.base + url)
        names = list(urls)
        for r in range(samples):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                times[name].append(_timed_get(session, console.base + urls[name]))
    p50 = {name: statistics.median(values) for name, values in times.items()}
    first = p50["first page"]
    return {
        "messages": total,
        "queries": queries,
        "p50_ms": {name: round(value, 2) for name, value in p50.items()},
        "rare_ratio": round(p50["search rare"] / first, 2),
        "common_ratio": round(p50["search common"] / first, 2),
        "plans": plans,
        "samples": samples,
    }


def _timed_get(session: requests.Session, url: str) -> float:
    started = time.perf_counter()
    response = session.get(url, timeout=30)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"GET {url}: {response.status_code} {response.text[:200]}")
    return elapsed * 1000


def deep_pages(setup: Setup, *, count: int, samples: int) -> dict[str, Any]:
    """Row 3: keyset pages at 10/50/90/100 % depth of one long chat against its first page,
    and the same pages by OFFSET, through the API and as the queries alone; the query plans."""
    from bench.seeding import ProgressTicker, seed_chat_messages
    from chats.models import Chat, Message
    from chats.selectors import message_list_for_chat
    from sofiia.lib.pagination import Position, encode_cursor, keyset_after

    chat = Chat.objects.get(pk=setup.chat_ids[0])
    started = time.monotonic()
    seed_chat_messages(chat, count, on_progress=ProgressTicker("messages"))
    seeded_seconds = time.monotonic() - started
    setup.say(f"  {count:,} messages seeded in {seeded_seconds:.1f} s")
    total = Message.objects.filter(chat=chat).count()
    ordered = Message.objects.filter(chat=chat).order_by("-ts", "-id").values_list("ts", "id")
    newest_first = message_list_for_chat(chat=chat).order_by("-ts", "-id")
    pages: dict[str, tuple[str, int]] = {"first": ("", 0)}
    # The same pages as the database runs them: the API's keyset query and the OFFSET one.
    queries: dict[str, Any] = {"keyset first": newest_first[:51], "offset first": newest_first[:50]}
    plans: dict[str, str] = {}
    for depth in (0.1, 0.5, 0.9, 1.0):
        start = min(int(total * depth), total - 50)
        ts, row_id = ordered[start - 1]
        position = Position(ts, row_id)
        name = f"{int(depth * 100)}%"
        pages[name] = (encode_cursor(f"messages:{chat.pk}", position, "desc"), start)
        queries[f"keyset {name}"] = keyset_after(message_list_for_chat(chat=chat), position, order="desc")[:51]
        queries[f"offset {name}"] = newest_first[start : start + 50]
    analyze = {"analyze": True} if setup.config == "postgres" else {}
    plans["keyset_50%"] = queries["keyset 50%"].explain(**analyze)
    plans["offset_50%"] = queries["offset 50%"].explain(**analyze)
    query_times: dict[str, list[float]] = {name: [] for name in queries}
    for name in queries:
        list(queries[name].all())
    for r in range(samples):
        for name in list(queries)[r % len(queries) :] + list(queries)[: r % len(queries)]:
            started = time.perf_counter()
            list(queries[name].all())
            query_times[name].append((time.perf_counter() - started) * 1000)
    query_p50 = {name: statistics.median(values) for name, values in query_times.items()}
    console = setup.console(workers=1)
    times: dict[str, list[float]] = {f"keyset {name}": [] for name in pages}
    times.update({f"offset {name}": [] for name in pages})
    with running(console), requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {setup.token}"
        urls = {}
        for name, (cursor, offset) in pages.items():
            keyset_url = f"{console.base}/api/chats/{chat.pk}/messages?limit=50"
            urls[f"keyset {name}"] = keyset_url + (f"&cursor={cursor}" if cursor else "")
            offset_url = f"{console.base}/api/bench/offset/chats/{chat.pk}/messages"
            urls[f"offset {name}"] = f"{offset_url}?limit=50&offset={offset}"
        for url in urls.values():
            for _ in range(2):
                _timed_get(session, url)
        names = list(urls)
        for r in range(samples):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                times[name].append(_timed_get(session, urls[name]))
    p50 = {name: statistics.median(values) for name, values in times.items()}
    first = p50["keyset first"]
    return {
        "messages": total,
        "seed_seconds": round(seeded_seconds, 1),
        "p50_ms": {name: round(value, 2) for name, value in p50.items()},
        "depth_ratio": {name: round(p50[f"keyset {name}"] / first, 2) for name in pages if name != "first"},
        "offset_ratio": {name: round(p50[f"offset {name}"] / p50[f"keyset {name}"], 1) for name in pages},
        # The database's part alone (the ORM query in the suite's process, rows fetched).
        "query_p50_ms": {name: round(value, 3) for name, value in query_p50.items()},
        "query_depth_ratio": {
            name: round(query_p50[f"keyset {name}"] / query_p50["keyset first"], 2) for name in pages if name != "first"
        },
        "query_offset_ratio": {
            name: round(query_p50[f"offset {name}"] / query_p50[f"keyset {name}"], 1) for name in pages
        },
        "plans": plans,
        "samples": samples,
    }


def _manage(setup: Setup, *args: str) -> tuple[float, str, str]:
    """Run a management command; its wall time, its output and its progress (stderr)."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT,
        env=setup.console_env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return elapsed, done.stdout, done.stderr


_RATE = re.compile(r"([\d,]+)\s*(?:events)?/s")


def audit_seeding(setup: Setup, *, count: int) -> dict[str, Any]:
    """The audit events rows 4 and 8 work on, 120 days old. They go in first, on the empty
    chain: seeding refuses to append old events after recent ones, which no prune could
    then reach."""
    from bench.seeding import ProgressTicker, seed_audit_events

    result = seed_audit_events(count, older_than_days=120, on_progress=ProgressTicker("audit events"))
    setup.say(f"  {count:,} audit events seeded in {result.seconds:.1f} s ({result.rate:,.0f}/s)")
    return {"seeded": count, "seed_seconds": round(result.seconds, 1)}


def audit_pruning(
    setup: Setup, *, seeded: dict[str, Any], seconds: float, prune_rate: int | None = None
) -> dict[str, Any]:
    """Rows 8 and 4: ``verify_audit`` over the whole chain (the seeded events and whatever the
    rows before added), then the p99 of sends while ``prune_audit`` (``--rate prune_rate``
    when given) deletes the seeded events against the p99 before and after it."""
    verify_seconds, verify_output, verify_progress = _manage(setup, "verify_audit")
    checked = int(re.search(r"OK: ([\d,]+) event", verify_output).group(1).replace(",", ""))  # type: ignore[union-attr]
    setup.say(f"  verify_audit: {verify_output.strip().splitlines()[-1]}")
    verify_rate = _RATE.search(verify_output.strip().splitlines()[-1])

    console = setup.console(workers=2)
    run = uuid.uuid4().hex[:8]
    windows: list[tuple[float, float, Load]] = []
    ended: list[float] = []

    def window(label: str) -> None:
        started = time.monotonic()
        load = wrk(url, "send", env=_send_env(setup, setup.chat_ids, run=f"{run}-{label}"), seconds=seconds)
        windows.append((started, time.monotonic(), load))
        _only_created(load, "sends around the prune")

    with running(console):
        url = console.base
        wrk(url, "send", env=_send_env(setup, setup.chat_ids, run=f"{run}-warm"), seconds=2)
        for i in range(3):
            window(f"before-{i}")
        pace = ["--rate", str(prune_rate)] if prune_rate else []
        prune = subprocess.Popen(
            [sys.executable, "manage.py", "prune_audit", *pace],
            cwd=PROJECT,
            env=setup.console_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        waiter = threading.Thread(target=lambda: (prune.wait(), ended.append(time.monotonic())))
        waiter.start()
        i = 0
        while not ended:
            window(f"during-{i}")
            i += 1
        waiter.join()
        for i in range(3):
            window(f"after-{i}")
    prune_output = (prune.stdout.read() if prune.stdout else "").strip()
    if prune.returncode != 0:
        raise RuntimeError(f"prune_audit failed:\n{prune_output}")
    summary = prune_output.splitlines()[-1]
    deleted = int(re.search(r"Pruned ([\d,]+) events", summary).group(1).replace(",", ""))  # type: ignore[union-attr]
    prune_seconds = float(re.search(r" in ([\d.]+) s", summary).group(1))  # type: ignore[union-attr]
    rate = _RATE.search(summary)
    # The deleting itself, after the command's start-up: a window counts as "during the prune"
    # when at least half of it fell inside that span, as "quiet" when none of it did.
    deleting = (ended[0] - prune_seconds, ended[0])

    def inside(start: float, end: float) -> float:
        return max(0.0, min(end, deleting[1]) - max(start, deleting[0])) / (end - start)

    pruning = [load for start, end, load in windows if inside(start, end) >= 0.5]
    quiet = [load for start, end, load in windows if inside(start, end) == 0]
    _, after_prune, _ = _manage(setup, "verify_audit")
    quiet_p99 = statistics.median(load.p99_ms for load in quiet)
    return {
        **seeded,
        "verify": {
            "events": checked,
            "seconds": round(verify_seconds, 2),
            # The command's own rate (its walk); the wall time includes Django's start-up.
            "rate": int(verify_rate.group(1).replace(",", "")) if verify_rate else round(checked / verify_seconds),
            "summary": verify_output.strip().splitlines()[-1],
            "progress": verify_progress.strip().splitlines()[-3:],
        },
        "prune": {
            "rate_limit": prune_rate,
            "deleted": deleted,
            "seconds": prune_seconds,
            "rate": int(rate.group(1).replace(",", "")) if rate else round(deleted / prune_seconds),
            "summary": summary,
            "chain_after": after_prune.strip().splitlines()[-1],
        },
        "p99_ratio": spread([load.p99_ms / quiet_p99 for load in pruning]) if pruning else None,
        "quiet": [load.as_dict() for load in quiet],
        "pruning": [load.as_dict() for load in pruning],
    }


def memory_and_metrics(setup: Setup, *, seconds: float, first: int, last: int, requests_total: int) -> dict[str, Any]:
    """Rows 6 and 5: worker RSS after ``last`` sends against after ``first``; then, after
    ``requests_total`` requests in all, the time of a ``/metrics`` scrape of every worker."""
    console = setup.console(workers=2)
    run = uuid.uuid4().hex[:8]
    sent = 0
    served = 0
    rss: dict[str, Any] = {}
    with running(console):
        url = console.base
        i = 0
        for threshold in (first, last):
            while sent < threshold:
                load = wrk(url, "send", env=_send_env(setup, setup.chat_ids, run=f"{run}-{i}"), seconds=seconds)
                _only_created(load, "sends for the memory figure")
                sent += load.requests
                served += load.requests
                i += 1
            rss[str(threshold)] = {"sends": sent, "worker_rss_mb": [round(rss_mb(p), 1) for p in console.worker_pids()]}
            setup.say(f"  after {sent:,} sends: worker RSS {rss[str(threshold)]['worker_rss_mb']} MB")
        reads = {
            "BENCH_TOKEN": setup.token,
            "BENCH_PATHS": ",".join(
                [
                    "/livez",
                    "/api/health",
                    "/api/chats",
                    f"/api/chats/{setup.chat_ids[1]}/messages",
                    f"/api/chats/{setup.chat_ids[1]}",
                    "/api/chats/999999999",
                    "/api/nowhere",
                ]
            ),
        }
        while served < requests_total:
            load = wrk(url, "get", env=reads, connections=16, seconds=seconds)
            served += load.requests
        scrape: list[float] = []
        health: list[float] = []
        size = 0
        if requests_total:
            setup.say(f"  {served:,} requests served; scraping /metrics")
        with requests.Session() as session:
            for _ in range(3 if requests_total else 0):
                session.get(f"{url}/metrics", timeout=30)
            for _ in range(30 if requests_total else 0):
                started = time.perf_counter()
                response = session.get(f"{url}/metrics", timeout=30)
                scrape.append((time.perf_counter() - started) * 1000)
                size = len(response.content)
                started = time.perf_counter()
                session.get(f"{url}/livez", timeout=30)
                health.append((time.perf_counter() - started) * 1000)
    first_rss = max(rss[str(first)]["worker_rss_mb"])
    last_rss = max(rss[str(last)]["worker_rss_mb"])
    figures: dict[str, Any] = {"rss": rss, "rss_ratio": round(last_rss / first_rss, 3), "requests": served}
    if scrape:
        figures["scrape_ms"] = {"p50": round(statistics.median(scrape), 1), "p95": round(percentile(scrape, 0.95), 1)}
        # A scrape against the cheapest request, measured alternately with it.
        figures["livez_ms"] = {"p50": round(statistics.median(health), 2)}
        figures["scrape_bytes"] = size
    return figures


def scale_out(setup: Setup, *, rounds: int, seconds: float, connections: int) -> dict[str, Any]:
    """Row 7: two instances (one worker each) against one, on the same database and Redis,
    sending to an agent that answers in 50 ms. The same two load generators in both cases."""
    one, other = setup.console(workers=1), setup.console(workers=1)
    run = uuid.uuid4().hex[:8]
    half = len(setup.slow_chat_ids) // 2
    chats = (setup.slow_chat_ids[:half], setup.slow_chat_ids[half:])

    def together(targets: tuple[Console, Console], label: str) -> float:
        loads: list[Load] = []

        def drive(i: int) -> None:
            env = _send_env(setup, chats[i], run=f"{run}-{label}-{i}")
            loads.append(wrk(targets[i].base, "send", env=env, seconds=seconds, connections=connections, threads=1))

        workers = [threading.Thread(target=drive, args=(i,)) for i in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        for load in loads:
            _only_created(load, f"scale-out, {label}")
        return sum(load.rate for load in loads)

    rates: dict[str, list[float]] = {"one": [], "two": []}
    busy: dict[str, list[float]] = {"one": [], "two": []}
    with running(one, other):
        together((one, other), "warm")
        together((one, one), "warm-one")
        for r in range(rounds):
            cases = [("one", (one, one)), ("two", (one, other))]
            for label, targets in cases if r % 2 == 0 else reversed(cases):
                with busy_cores(busy[label]):
                    rates[label].append(together(targets, f"{label}-{r}"))
                setup.say(f"  round {r + 1}/{rounds} {label} instance(s): {rates[label][-1]:7.1f} sends/s")
    return {
        "ratio": spread([d / s for d, s in zip(rates["two"], rates["one"], strict=True)]),
        "one_instance_rate": [round(v, 1) for v in rates["one"]],
        "two_instances_rate": [round(v, 1) for v in rates["two"]],
        "machine_cores_busy": {label: spread(values) for label, values in busy.items()},
        "connections_per_generator": connections,
    }
