from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from audit.chain import chain_verify


class Command(BaseCommand):
    help = (
        "Walk the audit hash chain from its anchor (genesis, or the last pruned event) to its head "
        "and name the first event that was edited, deleted or moved. Exit status 1 when the chain is broken."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--chunk-size", type=int, default=2000, help="Events read per query (1..100,000, default 2,000)."
        )

    def handle(self, *args: Any, chunk_size: int, **options: Any) -> None:
        if not 1 <= chunk_size <= 100_000:
            raise CommandError(f"--chunk-size must be from 1 to 100,000, got {chunk_size}")
        try:
            report = chain_verify(chunk_size=chunk_size)
        except DatabaseError as exc:
            raise CommandError(f"the database refused: {str(exc).strip().splitlines()[0]} (is it migrated?)") from exc
        start = "genesis" if report.anchor.event_id == 0 else f"the anchor after pruned event #{report.anchor.event_id}"
        if report.broken is not None:
            raise CommandError(f"Audit chain BROKEN: {report.broken} (checked {report.checked:,} events from {start}).")
        if report.checked == 0:
            self.stdout.write(f"Audit chain OK: no events after {start}.")
            return
        self.stdout.write(
            f"Audit chain OK: {report.checked:,} {'event' if report.checked == 1 else 'events'}, "
            f"#{report.first_id}..#{report.last_id}, from {start}."
        )
