"""A password change revokes the operator's API tokens."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db.models.signals import post_save

from operators.services import tokens_revoke


def _password_changed(sender: Any, instance: User, created: bool, **kwargs: Any) -> None:
    # set_password() leaves the raw password on the instance until save() is done with it;
    # a hash upgrade at login clears it first, since it is not a change of password.
    if created or getattr(instance, "_password", None) is None:
        return
    tokens_revoke(user=instance, actor="system", reason="password_change")


def connect() -> None:
    post_save.connect(_password_changed, sender=User, dispatch_uid="operators.password_changed")
