from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connection, transaction

from audit.hardening import DEFAULT_OWNER_ROLE, audit_harden, hardening_state


class Command(BaseCommand):
    help = (
        "PostgreSQL: hand the audit tables and the prune function to an owner role the application does not "
        "log in as, and leave the application's role only reading, appending and pruning through the "
        "database's own function. Run as a superuser after migrating. --check only reports (exit 1 when "
        "not hardened)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--app-role", required=True, help="The role the console instances log in as.")
        parser.add_argument(
            "--owner-role", default=DEFAULT_OWNER_ROLE, help=f"The owner role (default {DEFAULT_OWNER_ROLE})."
        )
        parser.add_argument("--check", action="store_true", help="Report only; change nothing.")

    def handle(self, *args: Any, app_role: str, owner_role: str, check: bool, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("the audit trail's database guards need PostgreSQL")
        try:
            if check:
                state = hardening_state(app_role)
            else:
                with transaction.atomic():
                    state = audit_harden(app_role=app_role, owner_role=owner_role)
        except (DatabaseError, ValueError) as exc:
            raise CommandError(str(exc).strip().splitlines()[0]) from exc
        owners = ", ".join(f"{table} by {owner}" for table, owner in sorted(state.owners.items()))
        if not state.hardened:
            reasons = []
            if state.app_is_superuser:
                reasons.append(f"{app_role} is a superuser")
            if state.app_can_change_events:
                reasons.append(f"{app_role} may update, delete or truncate audit events")
            if any(owner == app_role for owner in state.owners.values()):
                reasons.append(f"{app_role} owns audit tables")
            raise CommandError(f"Audit tables NOT hardened for {app_role}: {'; '.join(reasons)} (owned: {owners}).")
        self.stdout.write(f"Audit tables hardened for {app_role}: owned {owners}.")
