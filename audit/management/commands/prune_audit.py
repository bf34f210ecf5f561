from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connection
from django.utils import timezone

from audit.chain import format_ts
from audit.models import AuditEvent
from audit.selectors import audit_prunable_count
from audit.services import PruneBatch, audit_prune

DEFAULT_BATCH_SIZE = 2000
MAX_BATCH_SIZE = 100_000
PROGRESS_EVERY_SECONDS = 1.0


class Command(BaseCommand):
    help = (
        "Delete audit events older than the retention period, oldest first, in short batches "
        "that do not hold up the live service. The hash chain stays verifiable from the oldest "
        "kept event (its anchor is the last pruned event)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            default=None,
            help="Keep events of the last N days (default: SOFIIA_AUDIT_RETENTION_DAYS, now "
            f"{settings.SOFIIA_AUDIT_RETENTION_DAYS}).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Count what would be deleted; delete nothing.")
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            help=f"Events deleted per transaction (1..{MAX_BATCH_SIZE:,}, default {DEFAULT_BATCH_SIZE:,}).",
        )
        parser.add_argument(
            "--rate",
            type=int,
            default=None,
            help="Delete at most N events a second on average, pausing between batches (default: "
            "as fast as the database allows). For a prune in working hours.",
        )
        parser.add_argument(
            "--vacuum",
            action="store_true",
            help="Afterwards reclaim the space: VACUUM (ANALYZE) of the audit table on PostgreSQL, which "
            "does not block writers; VACUUM of the whole file on SQLite, which does while it runs.",
        )

    def handle(
        self,
        *args: Any,
        days: int | None,
        dry_run: bool,
        batch_size: int,
        rate: int | None,
        vacuum: bool,
        **options: Any,
    ) -> None:
        days = settings.SOFIIA_AUDIT_RETENTION_DAYS if days is None else days
        if days < 1:
            raise CommandError(f"--days must be at least 1, got {days}")
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise CommandError(f"--batch-size must be from 1 to {MAX_BATCH_SIZE:,}, got {batch_size}")
        if rate is not None and rate < 1:
            raise CommandError(f"--rate must be at least 1 event a second, got {rate}")
        older_than = timezone.now() - timedelta(days=days)
        try:
            self._prune(
                older_than=older_than,
                days=days,
                dry_run=dry_run,
                batch_size=batch_size,
                rate=rate,
                vacuum=vacuum,
                verbosity=options["verbosity"],
            )
        except DatabaseError as exc:
            raise CommandError(f"the database refused: {str(exc).strip().splitlines()[0]} (is it migrated?)") from exc

    def _prune(
        self,
        *,
        older_than: datetime,
        days: int,
        dry_run: bool,
        batch_size: int,
        rate: int | None,
        vacuum: bool,
        verbosity: int,
    ) -> None:
        if dry_run:
            count = audit_prunable_count(older_than=older_than)
            self.stdout.write(f"Would prune {count:,} events older than {format_ts(older_than)} ({days} days).")
            return

        # The events older than the cutoff: what a prune deletes, unless a newer event sits
        # among them (only a prefix of the chain goes). One index range count, and only
        # when progress is shown.
        about = audit_prunable_count(older_than=older_than) if verbosity >= 1 else 0
        started = shown = time.monotonic()
        deleted = 0

        def progress(batch: PruneBatch) -> None:
            nonlocal deleted, shown
            deleted += batch.deleted
            if verbosity >= 2:
                self.stdout.write(f"  deleted events #{batch.first_id}..#{batch.last_id} ({batch.deleted:,})")
            now = time.monotonic()
            if verbosity >= 1 and now - shown >= PROGRESS_EVERY_SECONDS:
                # On stderr, so the summary stays the one line on stdout that scripts and cron read.
                shown = now
                self.stderr.write(
                    f"deleted {deleted:,} of about {max(about, deleted):,} events ({deleted / (now - started):,.0f}/s)"
                )

        result = audit_prune(older_than=older_than, batch_size=batch_size, rate=rate, on_batch=progress)
        self.stdout.write(
            f"Pruned {result.deleted:,} events in {result.seconds:.1f} s ({result.rate:,.0f}/s) "
            f"in {result.batches:,} {'batch' if result.batches == 1 else 'batches'}, "
            f"older than {format_ts(older_than)} ({days} days)."
        )
        if vacuum:
            self._vacuum()

    def _vacuum(self) -> None:
        started = time.monotonic()
        table = connection.ops.quote_name(AuditEvent._meta.db_table)
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(f"VACUUM (ANALYZE) {table}")
            else:
                cursor.execute("VACUUM")
        self.stdout.write(f"Vacuumed {AuditEvent._meta.db_table} in {time.monotonic() - started:.1f} s.")
