"""Retention: prune_audit deletes old events in short batches, keeps the chain verifiable
from an anchor, and leaves the live service alone while it runs."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
import uuid
from io import StringIO

import pytest
import requests
from django.core.management import CommandError, call_command

from audit.chain import chain_verify
from audit.models import AuditChainAnchor, AuditEvent
from tests.audit.helpers import as_intruder, days_ago, events, only_event, seed_events
from tests.live import PROJECT, TEST_AUDIT_CHAIN_KEY, database_url
from tests.personas import make_persona
from tests.waiting import wait_until


def prune(*args: str) -> str:
    out = StringIO()
    call_command("prune_audit", *args, stdout=out)
    return out.getvalue()


def verify() -> str:
    out = StringIO()
    call_command("verify_audit", stdout=out)
    return out.getvalue()


SUMMARY = re.compile(
    r"Pruned (?P<count>[\d,]+) events in \d+\.\d s \([\d,]+/s\) in (?P<batches>[\d,]+) batch(es)?, "
    r"older than \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z \((?P<days>\d+) days\)\."
)


def summary(out: str) -> dict[str, str]:
    match = SUMMARY.search(out)
    assert match, out
    return match.groupdict()


def test_a_dry_run_counts_and_deletes_nothing(db):
    seed_events(days_ago(120, count=12))
    seed_events(days_ago(10, count=3))
    out = prune("--dry-run")
    assert re.fullmatch(r"Would prune 12 events older than \d{4}-\d\d-\d\dT[\d:.]+Z \(90 days\)\.\n", out), out
    assert AuditEvent.objects.count() == 15
    assert not AuditChainAnchor.objects.exists()
    assert not events(action="audit.prune")


def test_prune_deletes_expired_events_in_batches_and_the_rest_still_verifies(db):
    old = seed_events(days_ago(100, count=20))
    recent = seed_events(days_ago(5, count=4))
    last_pruned = AuditEvent.objects.get(id=old[-1])
    out = prune("--batch-size", "7", "-v", "2")
    assert summary(out) == {"count": "20", "batches": "3", "days": "90"}
    assert "deleted events #1..#7 (7)" in out
    assert "deleted events #15..#20 (6)" in out
    # Each batch is recorded in its own transaction, naming the anchor it left.
    assert [e.id for e in events()] == [*recent, *range(recent[-1] + 1, recent[-1] + 4)]
    anchor = AuditChainAnchor.objects.get()
    assert (anchor.event_id, anchor.hash, anchor.pruned_total) == (old[-1], last_pruned.hash, 20)
    assert verify().startswith(
        f"Audit chain OK: 7 events, #21..#27, from the anchor after pruned event #{old[-1]}, in "
    )
    records = events(action="audit.prune")
    assert {(e.actor, e.target_type) for e in records} == {("system", "audit")}
    assert [{k: e.details[k] for k in ("batch", "deleted", "first_id", "last_id")} for e in records] == [
        {"batch": 1, "deleted": 7, "first_id": 1, "last_id": 7},
        {"batch": 2, "deleted": 7, "first_id": 8, "last_id": 14},
        {"batch": 3, "deleted": 6, "first_id": 15, "last_id": 20},
    ]
    assert records[-1].details["anchor_hash"] == last_pruned.hash


def test_on_sqlite_the_prune_pauses_between_batches_for_waiting_writers(db, monkeypatch):
    from django.db import connection

    from audit import services

    pauses = []
    monkeypatch.setattr(services.time, "sleep", pauses.append)
    seed_events(days_ago(100, count=20))
    prune("--batch-size", "7")
    # Three batches, a pause after each but the last, and none on PostgreSQL, whose writers
    # never wait for a prune's batch (they lock only the chain head).
    expected = [services.SQLITE_WRITER_PAUSE] * 2 if connection.vendor == "sqlite" else []
    assert pauses == expected


class StoppedClock:
    """``audit.services``' view of time: it moves only when the prune sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:  # stands in for time.sleep: no real time passes
        self.pauses.append(seconds)
        self.now += seconds


def test_with_a_rate_the_prune_paces_its_batches(db, monkeypatch):
    from audit import services

    clock = StoppedClock()
    monkeypatch.setattr(services, "time", clock)
    seed_events(days_ago(100, count=20))
    out = prune("--batch-size", "7", "--rate", "10")
    assert summary(out) == {"count": "20", "batches": "3", "days": "90"}
    # 7 events at 10 a second take 0.7 s: after each batch but the last, the prune waits
    # until its average is back at the rate (the batches themselves take no time here).
    assert clock.pauses == pytest.approx([0.7, 0.7])
    assert clock.now == pytest.approx(1.4)


def test_a_prune_slower_than_its_rate_does_not_wait(db, monkeypatch):
    from django.db import connection

    from audit import services

    clock = StoppedClock()
    monkeypatch.setattr(services, "time", clock)
    real_batch = services._prune_batch

    def slow_batch(**kwargs):
        clock.now += 2.0  # each batch takes 2 s: 7 events in 2 s is under the rate
        return real_batch(**kwargs)

    monkeypatch.setattr(services, "_prune_batch", slow_batch)
    seed_events(days_ago(100, count=20))
    prune("--batch-size", "7", "--rate", "10")
    expected = [services.SQLITE_WRITER_PAUSE] * 2 if connection.vendor == "sqlite" else []
    assert clock.pauses == expected


def test_the_retention_defaults_to_the_setting(db, settings):
    settings.SOFIIA_AUDIT_RETENTION_DAYS = 30
    seed_events(days_ago(45, count=3))
    seed_events(days_ago(20, count=2))
    assert summary(prune()) == {"count": "3", "batches": "1", "days": "30"}
    assert AuditEvent.objects.filter(action="seed.event").count() == 2
    assert only_event(action="audit.prune").details["deleted"] == 3


def test_days_moves_the_cutoff_and_pruning_again_continues_from_the_anchor(db):
    seed_events(days_ago(100, count=2))
    seed_events(days_ago(50, count=3))
    seed_events(days_ago(10, count=1))
    assert summary(prune("--days", "60"))["count"] == "2"
    assert summary(prune("--days", "30"))["count"] == "3"
    assert summary(prune("--days", "30"))["count"] == "0"
    assert AuditChainAnchor.objects.get().pruned_total == 5
    assert [e.details["deleted"] for e in events(action="audit.prune")] == [2, 3, 0]
    report = chain_verify()
    assert report.ok
    assert report.first_id == 6


def test_prune_only_ever_deletes_the_oldest_part_of_the_chain(db):
    # A recent event between old ones (clocks gone wrong, or a restore): pruning stops at it,
    # since deleting around it would cut the chain in two.
    seed_events(days_ago(200, count=2) + days_ago(1) + days_ago(200, count=2))
    assert summary(prune())["count"] == "2"
    assert [e.id for e in events(action="seed.event")] == [3, 4, 5]
    assert only_event(action="audit.prune").details["last_id"] == 2
    assert chain_verify().ok


def test_a_pruned_chain_still_detects_tampering_with_its_oldest_kept_event(db):
    seed_events(days_ago(100, count=5))
    seed_events(days_ago(1, count=3))
    prune()
    with as_intruder():
        AuditEvent.objects.filter(id=6).delete()
    with pytest.raises(CommandError, match=r"event #7: does not link to the prune anchor \(event #5\)"):
        verify()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--days", "0"], "--days must be at least 1"),
        (["--days", "-7"], "--days must be at least 1"),
        (["--batch-size", "0"], "--batch-size must be from 1"),
        (["--batch-size", "100001"], "--batch-size must be from 1"),
        (["--days", "abc"], "invalid int value"),
        (["--batch-size", "1.5"], "invalid int value"),
        (["--rate", "0"], "--rate must be at least 1 event a second"),
        (["--rate", "fast"], "invalid int value"),
        (["--everything"], "unrecognized arguments"),
    ],
)
def test_bad_flags_are_refused_and_nothing_is_deleted(db, args, message):
    seed_events(days_ago(100, count=3))
    with pytest.raises(CommandError, match=re.escape(message)):
        prune(*args)
    assert AuditEvent.objects.count() == 3
    assert not events(action="audit.prune")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {"DATABASE_URL": database_url(), "PATH": "/usr/bin:/bin", "SOFIIA_AUDIT_CHAIN_KEY": TEST_AUDIT_CHAIN_KEY}
    return subprocess.run([sys.executable, *args], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120)


def test_the_ops_script_is_prune_audit_with_the_same_flags(transactional_db):
    seed_events(days_ago(100, count=5))
    seed_events(days_ago(1, count=2))
    dry = _run("ops/prune_audit_db.py", "--dry-run")
    assert (dry.returncode, dry.stderr) == (0, "")
    assert dry.stdout.startswith("Would prune 5 events older than ")
    bad = _run("ops/prune_audit_db.py", "--days", "0")
    assert bad.returncode == 1
    assert "--days must be at least 1" in bad.stderr
    unknown = _run("ops/prune_audit_db.py", "--bogus")
    assert unknown.returncode == 2
    assert "unrecognized arguments: --bogus" in unknown.stderr
    assert _run("manage.py", "prune_audit", "--batch-size", "x").returncode != 0
    assert AuditEvent.objects.filter(action="seed.event").count() == 7
    done = _run("ops/prune_audit_db.py", "--batch-size", "2", "--vacuum")
    assert done.returncode == 0, done.stderr
    assert summary(done.stdout) == {"count": "5", "batches": "3", "days": "90"}
    assert re.search(r"^Vacuumed audit_auditevent in \d+\.\d s\.$", done.stdout, re.MULTILINE)
    assert AuditEvent.objects.filter(action="seed.event").count() == 2
    assert [e.details["deleted"] for e in events(action="audit.prune")] == [2, 2, 1]
    assert chain_verify().ok


@pytest.mark.parametrize("command", [["ops/prune_audit_db.py", "--dry-run"], ["manage.py", "verify_audit"]])
def test_an_unmigrated_database_is_one_clear_line_not_a_traceback(tmp_path, command):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, *command], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert re.fullmatch(r"CommandError: the database refused: no such table: audit_\w+ \(is it migrated\?\)", lines[0])


@pytest.mark.postgres
@pytest.mark.live
def test_pruning_200k_events_on_postgresql_leaves_sends_running(live_console):
    seed_events(days_ago(400, count=200_000))
    alice = make_persona("alice")
    console = live_console(workers=2)
    http = console.session(alice.token)
    chat = http.post(f"{console.base}/api/chats", json={"title": "during prune", "agent": "echo"}, timeout=30).json()
    sends: list[tuple[float, float, int]] = []
    stop = threading.Event()

    def sender() -> None:
        while not stop.is_set():
            started = time.monotonic()
            response = http.post(
                f"{console.base}/api/chats/{chat['id']}/send",
                json={"text": f"send {len(sends)}"},
                headers={"Idempotency-Key": uuid.uuid4().hex},
                timeout=30,
            )
            sends.append((started, time.monotonic(), response.status_code))

    thread = threading.Thread(target=sender)
    thread.start()
    wait_until(lambda: len(sends) >= 3, 30, what="the sends to be under way")
    pruning_started = time.monotonic()
    out = prune("--batch-size", "2000")
    pruning_ended = time.monotonic()
    sent_while_pruning = len(sends)
    wait_until(lambda: len(sends) > sent_while_pruning, 30, what="a send after the prune")
    stop.set()
    thread.join(30)

    assert summary(out) == {"count": "200,000", "batches": "100", "days": "90"}
    assert {status for _, _, status in sends} == {201}
    during = [s for s in sends if s[0] >= pruning_started and s[1] <= pruning_ended]
    assert len(during) >= 3, f"only {len(during)} sends completed while pruning ran"
    assert not AuditEvent.objects.filter(action="seed.event").exists()
    pruned = events(action="audit.prune")
    assert (len(pruned), sum(e.details["deleted"] for e in pruned)) == (100, 200_000)
    assert AuditEvent.objects.filter(action="message.send").count() == len(sends)
    report = chain_verify()
    assert report.ok, report.broken
    assert report.anchor.event_id == 200_000
    with requests.get(f"{console.base}/api/health", timeout=10) as health:
        assert health.status_code == 200


def prune_with_stderr(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("prune_audit", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


PROGRESS = re.compile(r"deleted ([\d,]+) of about ([\d,]+) events \([\d,]+/s\)")


def test_prune_shows_its_progress_on_stderr(db, monkeypatch):
    monkeypatch.setattr("audit.management.commands.prune_audit.PROGRESS_EVERY_SECONDS", 0)
    seed_events(days_ago(100, count=25))
    seed_events(days_ago(5, count=2))
    out, err = prune_with_stderr("--batch-size", "10")
    assert summary(out) == {"count": "25", "batches": "3", "days": "90"}
    assert [match.groups() for match in PROGRESS.finditer(err)] == [("10", "25"), ("20", "25"), ("25", "25")], err
    assert len(err.splitlines()) == 3
    assert "deleted events #" not in out  # the batches themselves only at verbosity 2


def test_prune_progress_is_at_most_about_once_a_second(db):
    seed_events(days_ago(100, count=25))
    out, err = prune_with_stderr("--batch-size", "10")
    assert summary(out)["count"] == "25"
    assert err == ""  # the whole prune took less than the first second


def test_prune_is_quiet_at_verbosity_0_but_for_its_summary(db, monkeypatch):
    monkeypatch.setattr("audit.management.commands.prune_audit.PROGRESS_EVERY_SECONDS", 0)
    seed_events(days_ago(100, count=25))
    out, err = prune_with_stderr("--batch-size", "10", "--verbosity", "0")
    assert summary(out) == {"count": "25", "batches": "3", "days": "90"}
    assert err == ""
