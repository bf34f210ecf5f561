from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate

from sofiia.lib.groups import after_migrate


def _operators_group_ensure() -> None:
    from operators.roles import operators_group_ensure

    operators_group_ensure()


class OperatorsConfig(AppConfig):
    name = "operators"
    verbose_name = "Operators"

    def ready(self) -> None:
        from operators import receivers

        receivers.connect()
        post_migrate.connect(after_migrate(_operators_group_ensure), sender=self, dispatch_uid="operators.group")
