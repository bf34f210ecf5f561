"""Groups the apps rely on (``auditors``, ``operators``) exist after every migrate and flush."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.apps import apps as global_apps


def after_migrate(ensure: Callable[[], object]) -> Callable[..., None]:
    """A ``post_migrate`` receiver that runs ``ensure`` once the auth tables exist.

    A test database flush empties the auth tables after the migrations made the groups;
    ``post_migrate`` follows every migrate and flush, so the groups are always there.
    """

    def receiver(**kwargs: Any) -> None:
        # migrate passes the migrated project state; flush does not (everything is migrated).
        state = kwargs.get("apps", global_apps)
        try:
            state.get_model("auth", "Group")
        except LookupError:
            return  # a partial migrate that has not created the auth tables yet
        ensure()

    return receiver
