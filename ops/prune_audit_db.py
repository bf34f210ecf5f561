#!/usr/bin/env python
"""Prune old audit events: ``manage.py prune_audit`` with the same flags, for cron and ops.

    python ops/prune_audit_db.py [--days N] [--dry-run] [--batch-size N] [--rate N] [--vacuum]

Run from anywhere with the project's environment (DATABASE_URL etc.); exit status 0 on
success, 1 on a bad value or a failure, 2 on an unknown flag.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> None:
    sys.path.insert(0, str(PROJECT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sofiia.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        # Load the settings up front, so a bad variable is one line, not a traceback.
        settings.INSTALLED_APPS  # noqa: B018
        execute_from_command_line([str(PROJECT / "manage.py"), "prune_audit", *argv])
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"configuration error: {exc}\n")
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
