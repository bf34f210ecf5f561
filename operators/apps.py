from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.apps import apps as global_apps
from django.db.models.signals import post_migrate


def _operators_group_after_migrate(**kwargs: Any) -> None:
    from operators.roles import operators_group_ensure

    state = kwargs.get("apps", global_apps)
    try:
        state.get_model("auth", "Group")
    except LookupError:
        return  # a partial migrate that has not created the auth tables yet
    operators_group_ensure()


class OperatorsConfig(AppConfig):
    name = "operators"
    verbose_name = "Operators"

    def ready(self) -> None:
        from operators import receivers

        receivers.connect()
        # A test database flush empties the auth tables; the group must exist after it too.
        post_migrate.connect(_operators_group_after_migrate, sender=self, dispatch_uid="operators.group")
