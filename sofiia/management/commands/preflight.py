from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sofiia.preflight import Deployment, run_preflight, summary


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = (
        "Check that this configuration is fit to serve: settings, database, caches, audit keys, "
        "router nodes, Django's deployment checks. One PASS/WARN/FAIL line per check; exits 1 on a "
        "failure, and with --strict on a warning too."
    )
    requires_system_checks: list[str] = []  # the deployment checks run as one of ours, reported in line

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--strict", action="store_true", help="Fail on warnings as well as failures.")
        parser.add_argument(
            "--workers",
            type=_positive,
            default=os.environ.get("GUNICORN_WORKERS") or "2",
            help="gunicorn workers per instance (default: GUNICORN_WORKERS, else 2).",
        )
        parser.add_argument(
            "--instances",
            type=_positive,
            default=os.environ.get("SOFIIA_INSTANCES") or "1",
            help="console instances sharing this configuration (default: SOFIIA_INSTANCES, else 1).",
        )

    def handle(self, *args: Any, strict: bool, workers: int, instances: int, **options: Any) -> None:
        results = run_preflight(Deployment(workers=workers, instances=instances))
        for result in results:
            self.stdout.write(result.line())
        verdict = summary(results)
        failed = any(r.verdict == "FAIL" for r in results)
        warned = any(r.verdict == "WARN" for r in results)
        if failed or (strict and warned):
            raise CommandError(f"preflight {verdict}" + (" (strict)" if strict and not failed else ""))
        self.stdout.write(f"preflight {verdict}")
