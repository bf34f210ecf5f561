"""Hand the audit tables to an owner role the application never logs in as (PostgreSQL).

After ``audit_harden``, the application's role may read the trail, append to it and move the
chain head forward, and prune only through ``audit_prune_batch`` (which runs as the owner);
it owns no audit table, so it cannot drop the triggers of migration 0007 or the tables
themselves. Run it as a superuser (or a role that can create roles and owns the tables),
after every migration; migrations that change audit tables then run as that role too.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection
from psycopg import sql

AUDIT_TABLES = ("audit_auditevent", "audit_auditchainhead", "audit_auditchainanchor")
PRUNE_FUNCTION = "audit_prune_batch(timestamptz, integer)"
DEFAULT_OWNER_ROLE = "sofiia_audit_owner"


@dataclass(frozen=True)
class HardeningState:
    app_role: str
    owners: dict[str, str]
    app_is_superuser: bool
    app_can_change_events: bool

    @property
    def hardened(self) -> bool:
        return (
            not self.app_is_superuser
            and not self.app_can_change_events
            and all(owner != self.app_role for owner in self.owners.values())
        )


def hardening_state(app_role: str) -> HardeningState:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c WHERE c.relname = ANY(%s)",
            [list(AUDIT_TABLES)],
        )
        owners = dict(cursor.fetchall())
        cursor.execute("SELECT coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = %s), false)", [app_role])
        (superuser,) = cursor.fetchone()
        cursor.execute(
            "SELECT has_table_privilege(%s, 'audit_auditevent', 'UPDATE') "
            "OR has_table_privilege(%s, 'audit_auditevent', 'DELETE') "
            "OR has_table_privilege(%s, 'audit_auditevent', 'TRUNCATE')",
            [app_role, app_role, app_role],
        )
        (can_change,) = cursor.fetchone()
    return HardeningState(
        app_role=app_role, owners=owners, app_is_superuser=superuser, app_can_change_events=can_change
    )


def audit_harden(*, app_role: str, owner_role: str = DEFAULT_OWNER_ROLE) -> HardeningState:
    """Make ``owner_role`` (created NOLOGIN if missing) own the audit tables and the prune
    function, and leave ``app_role`` only what the application needs."""
    if app_role == owner_role:
        raise ValueError("the application's role and the owner role must differ")
    owner, app = sql.Identifier(owner_role), sql.Identifier(app_role)
    tables = sql.SQL(", ").join(sql.Identifier(name) for name in AUDIT_TABLES)
    statements = [
        sql.SQL(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {name}) THEN "
            "CREATE ROLE {owner} NOLOGIN; END IF; END $$"
        ).format(name=sql.Literal(owner_role), owner=owner),
        *(sql.SQL("ALTER TABLE {} OWNER TO {}").format(sql.Identifier(name), owner) for name in AUDIT_TABLES),
        sql.SQL("ALTER FUNCTION audit_prune_batch(timestamptz, integer) OWNER TO {}").format(owner),
        sql.SQL("REVOKE ALL ON {} FROM {}").format(tables, app),
        sql.SQL("REVOKE ALL ON {} FROM PUBLIC").format(tables),
        sql.SQL("GRANT SELECT, INSERT ON audit_auditevent TO {}").format(app),
        # The chain head moves with every append (forward only: the trigger checks); the anchor
        # is created on first use and otherwise moved by audit_prune_batch alone.
        sql.SQL("GRANT SELECT, INSERT, UPDATE ON audit_auditchainhead TO {}").format(app),
        sql.SQL("GRANT SELECT, INSERT ON audit_auditchainanchor TO {}").format(app),
        sql.SQL("REVOKE ALL ON FUNCTION audit_prune_batch(timestamptz, integer) FROM PUBLIC"),
        sql.SQL("GRANT EXECUTE ON FUNCTION audit_prune_batch(timestamptz, integer) TO {}").format(app),
    ]
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
    return hardening_state(app_role)
