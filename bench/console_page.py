"""Benchmark of the console's chat page: server time with 100,000 messages in the chat, server
time with ten 1 MB replies against ten short ones, and page weight (HTML + CSS + JS,
uncompressed) of a chat with 50 messages. Prints markdown tables; results are recorded in
docs/performance.md ("The console's chat page").

    .venv/bin/python bench/console_page.py                       # SQLite
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/sofiia_bench .venv/bin/python bench/console_page.py

It makes its own database (a temporary SQLite file, or a fresh PostgreSQL database next to the
one DATABASE_URL names, dropped after), seeds it with bulk_create, and renders the pages through
Django's test client with production settings (DEBUG off): server time is the whole request
inside Django (middleware, session, queries, Markdown, templates), without the network. The
node is an in-process dev router on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from bench.harness import scratch_database  # noqa: E402
from nodes.devrouter import DevRouter  # noqa: E402

OPERATOR_LINES = [
    "Restart the ingest worker on {n} and tell me what the queue depth is afterwards.",
    "What changed in the config between the last two deploys?",
    "Summarise the errors from the last hour, grouped by service.",
    "Can you check whether the backup of shard {n} finished?",
]
AGENT_REPLIES = [
    "The ingest worker on node {n} restarted cleanly. Queue depth went from **1,204** to **37** within "
    "two minutes; consumers are keeping up.\n\n- lag: 0.4 s\n- errors since restart: 0\n- throughput: 820 msg/s",
    "Two keys changed between the deploys:\n\n```yaml\nworkers: 8        # was 6\ntimeout_s: 45     # was 30\n```\n"
    "Nothing else differs; both changes came from the same merge request.",
    "Errors in the last hour, by service:\n\n| service | errors | top cause |\n|---|---|---|\n"
    "| api | 12 | upstream timeout |\n| ingest | 3 | malformed payload |\n| auth | 0 | — |\n\n"
    "The API timeouts cluster around 10:42 and match a slow node.",
    "Backup of shard {n} finished at 03:12 UTC: 48.2 GiB in 21 min, checksum verified. "
    "The next one is scheduled for tomorrow at the same time.",
]


# The reply-size row: a page with ten replies of this size, against one with ten short ones.
LARGE_REPLY_BYTES = 1_000_000
REPLIES = 10
REPLY_SIZE_TARGET_MS = 100.0


def large_table(size: int) -> str:
    """A Markdown table of about ``size`` characters, like a node's dump of a query result."""
    header = "| host | service | p50 ms | p99 ms | errors | note |\n|:--|:--|--:|--:|--:|:-:|\n"
    line = "| node-{n:05d} | ingest | {p50:.1f} | {p99:.1f} | {e} | ok |\n"
    rows, length, n = [header], len(header), 0
    while length < size:
        rows.append(line.format(n=n, p50=n % 97 / 3, p99=n % 89 * 1.7, e=n % 7))
        length += len(rows[-1])
        n += 1
    return "".join(rows)[:size]


def seed_replies(chat: object, texts: list[str], *, operator: object) -> None:
    """Each text as a delivered reply to an operator line, stored as the send path stores it."""
    from chats.markdown import reply_html
    from chats.models import Message

    start = Message._meta.get_field("ts").default() - timedelta(seconds=len(texts) * 10)  # type: ignore[operator]
    for n, text in enumerate(texts):
        asked = Message.objects.create(
            chat=chat, role="operator", text=OPERATOR_LINES[n % len(OPERATOR_LINES)].format(n=n), node="NODA1",
            status="delivered", ts=start + timedelta(seconds=n * 10), operator=operator,
            idempotency_key=uuid.uuid4().hex, attempts=1,
        )  # fmt: skip
        Message.objects.create(
            chat=chat, role="agent", text=text, html=reply_html(text), node="NODA1", status="delivered",
            ts=start + timedelta(seconds=n * 10 + 1), reply_to=asked,
        )  # fmt: skip


def interleaved(client: object, urls: dict[str, str], repeat: int) -> dict[str, list[float]]:
    """Server time of each page, the pages requested in turn (the order rotating each round)."""
    samples: dict[str, list[float]] = {label: [] for label in urls}
    labels = list(urls)
    for round_ in range(repeat):
        for label in labels[round_ % len(labels) :] + labels[: round_ % len(labels)]:
            samples[label] += timed(client, urls[label], 1)
    return samples


def configure(db_url: str, router: DevRouter) -> None:
    for key in [k for k in os.environ if k.startswith(("SOFIIA_", "DJANGO_"))]:
        del os.environ[key]
    os.environ.update(
        DATABASE_URL=db_url,
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="bench-" + "x" * 50,
        DJANGO_ALLOWED_HOSTS="testserver",
        DJANGO_SETTINGS_MODULE="sofiia.settings",
        SOFIIA_NODES=f"NODA1={router.url}",
        SOFIIA_LOG_LEVEL="error",
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def seed(chat: object, count: int, *, operator: object) -> None:
    from chats.markdown import reply_html
    from chats.models import Message

    rendered: dict[str, str] = {}  # a few hundred distinct replies, each rendered once
    rng = random.Random(7)
    start = Message._meta.get_field("ts").default() - timedelta(seconds=count * 5)  # type: ignore[operator]
    batch = []
    for n in range(count):
        pair, is_agent = divmod(n, 2)
        text = rng.choice(AGENT_REPLIES if is_agent else OPERATOR_LINES).format(n=pair % 97)
        if is_agent and text not in rendered:
            rendered[text] = reply_html(text)
        batch.append(
            Message(
                chat=chat, role="agent" if is_agent else "operator", text=text, node="NODA1", status="delivered",
                html=rendered[text] if is_agent else "",
                ts=start + timedelta(seconds=n * 5), operator=None if is_agent else operator,
                idempotency_key=None if is_agent else uuid.uuid4().hex, attempts=0 if is_agent else 1,
            )
        )  # fmt: skip
        if len(batch) == 5000:
            Message.objects.bulk_create(batch)
            batch = []
    Message.objects.bulk_create(batch)


def timed(client: object, url: str, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url)  # type: ignore[attr-defined]
        samples.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{url}: {response.status_code}")
    return samples


def row(label: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"| {label} | {statistics.median(ordered):.1f} | {p95:.1f} | {ordered[-1]:.1f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000, help="messages in the long chat (default 100,000)")
    parser.add_argument("--repeat", type=int, default=50, help="timed requests per page (default 50)")
    parser.add_argument(
        "--sizes-only", action="store_true", help="only the reply-size pages (ten 1 MB replies against ten short)"
    )
    parser.add_argument(
        "--weight-only", action="store_true", help="only the page weight and the first paint at 390 px (500 messages)"
    )
    args = parser.parse_args()

    router = DevRouter("NODA1").start()
    with scratch_database() as db_url:
        configure(db_url, router)
        from django.test import Client

        from operators.services import operator_create

        operator = operator_create(username="bench", password=uuid.uuid4().hex, with_token=False).operator
        client = Client()
        client.force_login(operator)
        if not (args.sizes_only or args.weight_only):
            long_chat_pages(client, operator, messages=args.messages, repeat=args.repeat)
        if not args.weight_only:
            reply_size_pages(client, operator, repeat=args.repeat)
        if not args.sizes_only:
            page_weight(client, operator)
            first_paint(client, operator)
    router.stop()


def long_chat_pages(client: Any, operator: object, *, messages: int, repeat: int) -> None:
    from django.conf import settings
    from django.db import connection

    from chats.models import Chat, Message
    from chats.views import PAGE_SIZE
    from sofiia.lib.pagination import Position, encode_cursor

    started = time.perf_counter()
    long_chat = Chat.objects.create(owner=operator, title="long", agent="echo", node="NODA1")
    seed(long_chat, messages, operator=operator)
    seeding = time.perf_counter() - started
    # What autovacuum (PostgreSQL) would have done after such a load: without statistics the
    # planner takes a chat of 100,000 messages for a few dozen and reads half of it.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    middle = Message.objects.filter(chat=long_chat).order_by("ts", "id")[messages // 2]
    oldest = Message.objects.filter(chat=long_chat).order_by("ts", "id")[PAGE_SIZE]
    deep = encode_cursor(f"messages:{long_chat.pk}", Position(middle.ts, middle.pk), "desc")
    last = encode_cursor(f"messages:{long_chat.pk}", Position(oldest.ts, oldest.pk), "desc")
    newest = Message.objects.filter(chat=long_chat).order_by("-ts", "-id").first()
    poll = encode_cursor(f"console-poll:{long_chat.pk}", Position(newest.ts, newest.pk), "asc")  # type: ignore[union-attr]
    pages = {
        f"chat page, newest {PAGE_SIZE} of {messages:,}": f"/console/chats/{long_chat.pk}/",
        f"chat page, {PAGE_SIZE} from the middle": f"/console/chats/{long_chat.pk}/?cursor={deep}",
        "chat page, the oldest": f"/console/chats/{long_chat.pk}/?cursor={last}",
        "older page (script)": f"/console/chats/{long_chat.pk}/older?cursor={deep}",
        "poll for updates (script)": f"/console/chats/{long_chat.pk}/updates?cursor={poll}",
        "chat list": "/console/",
    }
    print(f"seeded {messages:,} messages in {seeding:.1f} s on {settings.DATABASES['default']['ENGINE']}")
    print("\n| page (server time, ms) | p50 | p95 | max |\n| --- | --- | --- | --- |")
    for label, url in pages.items():
        timed(client, url, 5)  # warm: templates, node status, the database's cache
        print(row(label, timed(client, url, repeat)))


def reply_size_pages(client: Any, operator: object, *, repeat: int) -> None:
    """Server time of a chat page with ten 1 MB replies (and ten at the Markdown bound) as a
    ratio of the same page with ten short replies, requested in interleaved rounds."""
    from chats.markdown import REPLY_MARKDOWN_MAX_CHARS, reply_html
    from chats.models import Chat

    ordinary = "\n\n".join(reply.format(n=7) for reply in AGENT_REPLIES)
    at_bound = (ordinary + "\n\n") * (REPLY_MARKDOWN_MAX_CHARS // len(ordinary) + 1)
    at_bound = at_bound[:REPLY_MARKDOWN_MAX_CHARS]
    if not reply_html(at_bound):
        raise RuntimeError("the reply at the Markdown bound is not rendered: the row would measure plain text")
    sized = {
        "ten short replies": [AGENT_REPLIES[n % len(AGENT_REPLIES)].format(n=n) for n in range(REPLIES)],
        f"ten replies of {REPLY_MARKDOWN_MAX_CHARS:,} characters (rendered)": [at_bound] * REPLIES,
        "ten 1 MB replies (Markdown tables, shown as text)": [large_table(LARGE_REPLY_BYTES)] * REPLIES,
    }
    urls = {}
    for label, texts in sized.items():
        chat = Chat.objects.create(owner=operator, title=label, agent="echo", node="NODA1")
        seed_replies(chat, texts, operator=operator)
        urls[label] = f"/console/chats/{chat.pk}/"
        timed(client, urls[label], 5)  # warm
    samples = interleaved(client, urls, repeat)
    baseline = statistics.median(samples["ten short replies"])
    print("\n| chat page with (server time, ms) | p50 | p95 | max | p50 vs ten short | page bytes |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, url in urls.items():
        ordered = sorted(samples[label])
        p50, p95 = statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
        size = len(client.get(url).content)
        print(f"| {label} | {p50:.1f} | {p95:.1f} | {ordered[-1]:.1f} | {p50 / baseline:.2f}× | {size:,} |")
    largest = statistics.median(samples[list(urls)[-1]])
    verdict = "met" if largest < REPLY_SIZE_TARGET_MS else "not met"
    print(f"\nten 1 MB replies: p50 {largest:.1f} ms (target: under {REPLY_SIZE_TARGET_MS:.0f} ms) — {verdict}")


def page_weight(client: Any, operator: object) -> None:
    from chats.models import Chat

    short = Chat.objects.create(owner=operator, title="fifty", agent="echo", node="NODA1")
    seed(short, 50, operator=operator)
    html = client.get(f"/console/chats/{short.pk}/").content
    static = PROJECT / "chats" / "static" / "console"
    parts = {
        "HTML (50 messages)": html,
        **{name: (static / name).read_bytes() for name in ("console.css", "console.js")},
    }
    print("\n| page weight | bytes | gzip |\n| --- | --- | --- |")
    for name, body in parts.items():
        print(f"| {name} | {len(body):,} | {len(gzip.compress(body)):,} |")
    total = sum(len(body) for body in parts.values())
    packed = sum(len(gzip.compress(body)) for body in parts.values())
    print(f"| **total** | **{total:,}** ({total / 1024:.1f} KiB) | {packed:,} |")


def first_paint(client: Any, operator: object, *, messages: int = 500, runs: int = 5) -> None:
    """First contentful paint of the chat page (500 messages in the chat, its newest 50 shown)
    in headless Chromium at 390 by 844 px: the page as served, its style and script read from
    disk (no network), the median of ``runs`` cold loads."""
    import re
    import tempfile

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from chats.models import Chat

    chat = Chat.objects.create(owner=operator, title="five hundred", agent="echo", node="NODA1")
    seed(chat, messages, operator=operator)
    html = client.get(f"/console/chats/{chat.pk}/").content.decode()
    folder = Path(tempfile.mkdtemp(prefix="sofiia-paint-"))
    static = PROJECT / "chats" / "static" / "console"
    html = re.sub(r'"/static/console/(console|favicon)(?:\.[0-9a-f]{12})?\.(css|js|svg)"', rf'"{static}/\1.\2"', html)
    (folder / "chat.html").write_text(html)
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=390,844"):
        options.add_argument(flag)
    samples = []
    for _ in range(runs):
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            driver.get(f"file://{folder / 'chat.html'}")
            samples.append(
                driver.execute_script("return performance.getEntriesByName('first-contentful-paint')[0].startTime")
            )
        finally:
            driver.quit()
    print(
        f"\nfirst contentful paint at 390 px, {messages} messages: median {statistics.median(samples):.0f} ms"
        f" (runs: {', '.join(f'{sample:.0f}' for sample in samples)})"
    )


if __name__ == "__main__":
    main()
