"""Operators: the people who chat with agents, as Django users with an API token."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import transaction
from rest_framework.authtoken.models import Token

from audit.actions import AuditAction
from audit.services import audit_record
from operators.errors import OperatorExists


@dataclass(frozen=True)
class OperatorCreated:
    operator: User
    created: bool
    token: str | None


def operator_create(
    *, username: str, password: str | None = None, with_token: bool = False, exist_ok: bool = False
) -> OperatorCreated:
    """Create an operator (a Django user), optionally with an API token.

    With ``exist_ok`` an existing operator is kept as is (a given password is set again)
    and its current token returned, so a setup script can run any number of times.
    """
    user_model = get_user_model()
    with transaction.atomic():
        operator, created = user_model.objects.get_or_create(username=username)
        if not created and not exist_ok:
            raise OperatorExists(f"Operator {username!r} already exists.")
        if password is not None:
            operator.set_password(password)
        elif created:
            operator.set_unusable_password()
        operator.save()
        token = Token.objects.get_or_create(user=operator)[0].key if with_token else None
        if created:
            audit_record(
                actor="system",
                action=AuditAction.OPERATOR_CREATE,
                target_type="user",
                target_id=operator.pk,
                details={"username": username, "token": with_token, "password": password is not None},
            )
    return OperatorCreated(operator=operator, created=created, token=token)
