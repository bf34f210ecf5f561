from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from audit.checkpoints import (
    CheckpointKeyError,
    checkpoint_make,
    checkpoint_write,
    new_signing_key_pem,
    public_key_pem,
    signing_key,
)


class Command(BaseCommand):
    help = (
        "Sign a checkpoint of the audit chain's head (event id, link, time) with the Ed25519 key in "
        "SOFIIA_AUDIT_SIGNING_KEY and write it to --out DIR, or to stdout. Run it from cron, where the "
        "key lives; verify_audit --checkpoints DIR later proves every checkpointed event is unchanged."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", type=Path, help="Directory to write the checkpoint file to (default: stdout).")
        parser.add_argument(
            "--public-key", action="store_true", help="Print the public key that verifies the checkpoints, and stop."
        )
        parser.add_argument(
            "--new-key",
            action="store_true",
            help="Print a new Ed25519 private key (PEM) for SOFIIA_AUDIT_SIGNING_KEY_FILE, and stop.",
        )

    def handle(self, *args: Any, out: Path | None, public_key: bool, new_key: bool, **options: Any) -> None:
        if new_key:
            self.stdout.write(new_signing_key_pem(), ending="")
            return
        try:
            if public_key:
                self.stdout.write(public_key_pem(signing_key().public_key()), ending="")
                return
            checkpoint = checkpoint_make()
        except CheckpointKeyError as exc:
            raise CommandError(str(exc)) from None
        except DatabaseError as exc:
            raise CommandError(f"the database refused: {str(exc).strip().splitlines()[0]}") from exc
        if out is None:
            self.stdout.write(checkpoint.to_json(), ending="")
            return
        try:
            path = checkpoint_write(checkpoint, out)
        except OSError as exc:
            raise CommandError(f"cannot write to {out}: {exc.strerror}") from None
        self.stdout.write(f"Checkpoint of event #{checkpoint.event_id} written to {path}.")
