"""The operator role: only members of the ``operators`` group use the console and the
operator API. Auditors and admins without it are refused, superusers included."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group

OPERATORS_GROUP = "operators"
_MEMO = "_sofiia_is_operator"


def is_operator(user: Any) -> bool:
    """Whether ``user`` holds the operator role (worked out once per user object)."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    memo = getattr(user, _MEMO, None)
    if memo is None:
        memo = user.groups.filter(name=OPERATORS_GROUP).exists()
        setattr(user, _MEMO, memo)
    return bool(memo)


def remember_role(user: Any, *, is_operator: bool) -> None:
    """Record what a query that loaded ``user`` already found out about the role."""
    setattr(user, _MEMO, is_operator)


def operators_group_ensure() -> Group:
    """The ``operators`` group, created if missing (after a test database flush, say)."""
    group, _ = Group.objects.get_or_create(name=OPERATORS_GROUP)
    return group
