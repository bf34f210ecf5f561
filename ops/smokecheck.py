#!/usr/bin/env python3
"""Smoke checks of a running Sofiia Console, over HTTP only (Python standard library only).

    smokecheck.py smoke BASE            health, metrics, audit key, one send and its replay
    smokecheck.py ab BASE_A BASE_B      a send through instance A replays through instance B
    smokecheck.py counters BASE         the product's counters from /metrics (for release evidence)

The operator token comes from SOFIIA_TOKEN, the audit key from SOFIIA_AUDIT_KEY; neither is
ever printed. One PASS/FAIL line per check, then a final PASS or FAIL line; the exit status
is 0 only when every check passed. ``ops/smoke.sh`` and ``ops/redis_idempotency_smoke.sh``
are the entry points.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

TIMEOUT = float(os.environ.get("SMOKE_TIMEOUT", "30"))
AGENT = os.environ.get("SMOKE_AGENT", "echo")
NODE = os.environ.get("SMOKE_NODE") or None


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(method: str, url: str, *, headers: dict[str, str] | None = None, body: Any = None) -> Reply:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))  # noqa: S310
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        # Only http(s) bases get here: main() refuses anything else.
        with urllib.request.urlopen(req, timeout=TIMEOUT) as response:  # noqa: S310
            return Reply(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())


class CheckFailed(Exception):
    pass


@dataclass
class Report:
    failures: int = 0
    lines: list[str] = field(default_factory=list)

    def check(self, name: str, run: Callable[[], str]) -> bool:
        try:
            detail = run()
        except CheckFailed as failure:
            self._line("FAIL", name, str(failure))
            self.failures += 1
            return False
        except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError) as error:
            self._line("FAIL", name, f"{type(error).__name__}: {error}")
            self.failures += 1
            return False
        self._line("PASS", name, detail)
        return True

    def _line(self, verdict: str, name: str, detail: str) -> None:
        line = f"{verdict}  {name}" + (f" — {detail}" if detail else "")
        self.lines.append(line)
        print(line, flush=True)

    def finish(self) -> int:
        print("PASS" if self.failures == 0 else f"FAIL ({self.failures} check(s) failed)", flush=True)
        return 0 if self.failures == 0 else 1


def expect(condition: bool, reason: str) -> None:
    if not condition:
        raise CheckFailed(reason)


def operator_headers() -> dict[str, str]:
    token = os.environ.get("SOFIIA_TOKEN", "")
    expect(bool(token), "SOFIIA_TOKEN is not set")
    return {"Authorization": f"Bearer {token}"}


def create_chat(base: str) -> int:
    body: dict[str, Any] = {"title": "smoke check", "agent": AGENT}
    if NODE:
        body["node"] = NODE
    reply = request("POST", f"{base}/api/chats", headers=operator_headers(), body=body)
    expect(reply.status == 201, f"POST /api/chats answered {reply.status}: {reply.body[:200]!r}")
    return int(reply.json()["id"])


def send(base: str, chat_id: int, text: str, key: str) -> Reply:
    headers = {**operator_headers(), "Idempotency-Key": key}
    return request("POST", f"{base}/api/chats/{chat_id}/send", headers=headers, body={"text": text})


def first_send(base: str, label: str, state: dict[str, Any]) -> Reply:
    """A new chat and a first send into it, remembered in ``state`` for the replay checks."""
    chat_id = create_chat(base)
    key, text = uuid.uuid4().hex, f"{label} {uuid.uuid4().hex[:8]}"
    reply = send(base, chat_id, text, key)
    expect(reply.status == 201, f"send answered {reply.status}: {reply.body[:200]!r}")
    expect(reply.headers.get("idempotent-replayed") != "true", "the first send was already a replay")
    state.update(chat_id=chat_id, key=key, text=text, first=reply)
    return reply


def smoke(base: str) -> int:
    base = base.rstrip("/")
    report = Report()
    state: dict[str, Any] = {}

    def health() -> str:
        reply = request("GET", f"{base}/api/health")
        expect(reply.status == 200, f"answered {reply.status}: {reply.body[:200]!r}")
        body = reply.json()
        expect(body.get("status") == "ok", f"status is {body.get('status')!r}, checks {body.get('checks')}")
        return f"version {body.get('version')}"

    def metrics() -> str:
        reply = request("GET", f"{base}/metrics")
        expect(reply.status == 200, f"answered {reply.status}")
        text = reply.body.decode(errors="replace")
        expect("# TYPE" in text, "not Prometheus text format")
        return f"{len(text.splitlines())} lines"

    def audit_without_key() -> str:
        reply = request("GET", f"{base}/api/audit?limit=1")
        expect(reply.status == 401, f"answered {reply.status} instead of 401")
        return "401"

    def audit_with_key() -> str:
        key = os.environ.get("SOFIIA_AUDIT_KEY", "")
        expect(bool(key), "SOFIIA_AUDIT_KEY is not set")
        reply = request("GET", f"{base}/api/audit?limit=1", headers={"X-Audit-Key": key})
        expect(reply.status == 200, f"answered {reply.status} instead of 200")
        expect("items" in reply.json(), "no items in the answer")
        return "200"

    def send_once() -> str:
        reply = first_send(base, "smoke", state)
        expect(reply.json()["reply"]["text"] != "", "empty reply")
        return f"chat {state['chat_id']}, reply from {reply.json()['reply']['node']}"

    def replay() -> str:
        expect("first" in state, "no send to replay")
        again = send(base, state["chat_id"], state["text"], state["key"])
        expect(again.status == 201, f"replay answered {again.status}")
        expect(again.headers.get("idempotent-replayed") == "true", "no Idempotent-Replayed: true header")
        expect(again.body == state["first"].body, "replayed body differs from the original")
        return "identical, Idempotent-Replayed: true"

    report.check("health", health)
    report.check("metrics", metrics)
    report.check("audit without key is refused", audit_without_key)
    report.check("audit with key is served", audit_with_key)
    report.check("send", send_once)
    report.check("send replay", replay)
    return report.finish()


def ab(base_a: str, base_b: str) -> int:
    base_a, base_b = base_a.rstrip("/"), base_b.rstrip("/")
    report = Report()
    state: dict[str, Any] = {}

    def backend(base: str) -> Callable[[], str]:
        def run() -> str:
            reply = request("GET", f"{base}/api/health")
            expect(reply.status == 200, f"health answered {reply.status}")
            body = reply.json()
            used = body.get("backends", {}).get("idempotency")
            expect(used == "redis", f"idempotency backend is {used!r}: replays cannot cross instances")
            expect(
                body["checks"].get("idempotency") == "ok", f"idempotency backend is {body['checks'].get('idempotency')}"
            )
            return "redis, ok"

        return run

    def send_on_a() -> str:
        first_send(base_a, "a/b smoke", state)
        return f"chat {state['chat_id']}"

    def replay_on_b() -> str:
        expect("first" in state, "no send on A to replay")
        reply = send(base_b, state["chat_id"], state["text"], state["key"])
        expect(reply.status == 201, f"replay on B answered {reply.status}: {reply.body[:200]!r}")
        expect(reply.headers.get("idempotent-replayed") == "true", "B did not answer with Idempotent-Replayed: true")
        state["replay"] = reply
        return "Idempotent-Replayed: true"

    def identical() -> str:
        expect("replay" in state, "no replay to compare")
        expect(state["replay"].body == state["first"].body, "the body replayed by B differs from A's")
        return f"{len(state['first'].body)} bytes"

    def single_message() -> str:
        expect("first" in state, "no send to look for")
        reply = request("GET", f"{base_b}/api/chats/{state['chat_id']}/messages?limit=200", headers=operator_headers())
        expect(reply.status == 200, f"messages answered {reply.status}")
        items = reply.json()["items"]
        sent = [m for m in items if m["role"] == "operator" and m["text"] == state["text"]]
        replies = [m for m in items if m["role"] == "agent"]
        expect(len(sent) == 1, f"{len(sent)} operator messages stored instead of 1")
        expect(len(replies) == 1, f"{len(replies)} replies stored instead of 1")
        return "1 operator message, 1 reply"

    report.check("instance A uses redis for idempotency", backend(base_a))
    report.check("instance B uses redis for idempotency", backend(base_b))
    report.check("send through A", send_on_a)
    report.check("replay through B", replay_on_b)
    report.check("identical body", identical)
    report.check("single stored message", single_message)
    return report.finish()


def counters(base: str) -> int:
    """Print the ``sofiia_*`` counter and histogram-count samples, sorted; exit 1 if unreachable."""
    try:
        reply = request("GET", f"{base.rstrip('/')}/metrics")
    except (urllib.error.URLError, OSError) as error:
        print(f"FAIL  metrics — {error}")
        return 1
    if reply.status != 200:
        print(f"FAIL  metrics — answered {reply.status}")
        return 1
    samples = [
        line
        for line in reply.body.decode(errors="replace").splitlines()
        if line.startswith("sofiia_") and ("_total" in line.split(" ")[0] or "_count" in line.split(" ")[0])
    ]
    print("\n".join(sorted(samples)) if samples else "(no sofiia_* samples yet)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    smoke_parser = commands.add_parser("smoke", help="health, metrics, audit key, one send and its replay")
    smoke_parser.add_argument("base")
    ab_parser = commands.add_parser("ab", help="a send through A replays through B")
    ab_parser.add_argument("base_a")
    ab_parser.add_argument("base_b")
    counters_parser = commands.add_parser("counters", help="the product's counters from /metrics")
    counters_parser.add_argument("base")
    args = parser.parse_args(argv)
    bases = [args.base_a, args.base_b] if args.command == "ab" else [args.base]
    for base in bases:
        if not base.startswith(("http://", "https://")):
            parser.error(f"{base!r} is not an http(s) URL")
    if args.command == "smoke":
        return smoke(args.base)
    if args.command == "counters":
        return counters(args.base)
    return ab(args.base_a, args.base_b)


if __name__ == "__main__":
    sys.exit(main())
