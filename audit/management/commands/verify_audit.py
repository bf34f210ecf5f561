from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from audit.chain import chain_verify
from audit.checkpoints import Checkpoint, CheckpointKeyError, checkpoint_problem, verify_key

PROGRESS_EVERY_SECONDS = 1.0


class Command(BaseCommand):
    help = (
        "Walk the audit chain from its anchor (genesis, or the last pruned event) to its head and name the "
        "first event that was edited, deleted, moved or re-hashed without the chain key. With --checkpoints "
        "DIR, also prove that every signed checkpoint there still matches the database. Exit status 1 when "
        "anything is broken."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--chunk-size", type=int, default=10_000, help="Events read per query (1..100,000, default 10,000)."
        )
        parser.add_argument(
            "--checkpoints",
            type=Path,
            help="Directory of checkpoint files written by audit_checkpoint (verified with SOFIIA_AUDIT_VERIFY_KEY).",
        )

    def handle(self, *args: Any, chunk_size: int, checkpoints: Path | None, **options: Any) -> None:
        if not 1 <= chunk_size <= 100_000:
            raise CommandError(f"--chunk-size must be from 1 to 100,000, got {chunk_size}")
        started = time.monotonic()
        shown = started

        def progress(checked: int, about: int) -> None:
            # On stderr, so the summary stays the one line on stdout that scripts read.
            nonlocal shown
            now = time.monotonic()
            if now - shown >= PROGRESS_EVERY_SECONDS:
                shown = now
                rate = checked / (now - started)
                self.stderr.write(f"verified {checked:,} of about {about:,} events ({rate:,.0f}/s)")

        try:
            report = chain_verify(chunk_size=chunk_size, on_progress=progress if options["verbosity"] >= 1 else None)
            seconds = time.monotonic() - started
            problems = self._checkpoint_problems(checkpoints) if checkpoints is not None else []
        except DatabaseError as exc:
            raise CommandError(f"the database refused: {str(exc).strip().splitlines()[0]} (is it migrated?)") from exc
        start = "genesis" if report.anchor.event_id == 0 else f"the anchor after pruned event #{report.anchor.event_id}"
        if report.broken is not None:
            raise CommandError(f"Audit chain BROKEN: {report.broken} (checked {report.checked:,} events from {start}).")
        if problems:
            raise CommandError("Audit chain BROKEN against its checkpoints:\n" + "\n".join(problems))
        if report.checked == 0:
            summary = f"Audit chain OK: no events after {start}."
        else:
            summary = (
                f"Audit chain OK: {report.checked:,} {'event' if report.checked == 1 else 'events'}, "
                f"#{report.first_id}..#{report.last_id}, from {start}, in {seconds:.1f} s "
                f"({report.checked / seconds if seconds > 0 else report.checked:,.0f} events/s)."
            )
        if checkpoints is not None:
            summary += f" Every checkpoint in {checkpoints} matches."
        self.stdout.write(summary)

    def _checkpoint_problems(self, directory: Path) -> list[str]:
        files = sorted(directory.glob("*.json")) if directory.is_dir() else []
        if not files:
            raise CommandError(f"no checkpoint files (*.json) in {directory}")
        try:
            key = verify_key()
        except CheckpointKeyError as exc:
            raise CommandError(str(exc)) from None
        problems = []
        for path in files:
            try:
                checkpoint = Checkpoint.from_json(path.read_text())
            except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
                problems.append(f"  {path.name}: unreadable ({exc})")
                continue
            problem = checkpoint_problem(checkpoint, key)
            if problem is not None:
                problems.append(f"  {path.name}: {problem}")
        return problems
