from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.apps import apps as global_apps
from django.db.models.signals import post_migrate


def _auditors_group_after_migrate(**kwargs: Any) -> None:
    from audit.services import auditors_group_ensure

    # migrate passes the migrated project state; flush does not (everything is migrated).
    state = kwargs.get("apps", global_apps)
    try:
        state.get_model("auth", "Group")
    except LookupError:
        return  # a partial migrate that has not created the auth tables yet
    auditors_group_ensure()


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        from audit import receivers

        receivers.connect()
        # A test database flush empties the auth tables after the migration created the
        # group; post_migrate runs after every migrate and flush, so the group is always there.
        post_migrate.connect(_auditors_group_after_migrate, sender=self, dispatch_uid="audit.auditors_group")
