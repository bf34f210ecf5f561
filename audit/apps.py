from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate

from sofiia.lib.groups import after_migrate


def _auditors_group_ensure() -> None:
    from audit.services import auditors_group_ensure

    auditors_group_ensure()


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        from audit import receivers

        receivers.connect()
        post_migrate.connect(after_migrate(_auditors_group_ensure), sender=self, dispatch_uid="audit.auditors_group")
