"""Operators: the people who chat with agents, as Django users in the ``operators`` group,
with hashed, expiring API tokens."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from audit.actions import AuditAction
from audit.services import audit_record
from operators.errors import OperatorExists
from operators.models import ApiToken
from operators.roles import operators_group_ensure
from operators.tokens import TOKEN_BYTES, token_digest
from sofiia.lib.clock import clock_now


@dataclass(frozen=True)
class OperatorCreated:
    operator: User
    created: bool
    token: str | None


def operator_create(
    *, username: str, password: str | None = None, with_token: bool = False, exist_ok: bool = False
) -> OperatorCreated:
    """Create an operator (a Django user in the ``operators`` group), optionally with an API token.

    A password must pass Django's validators (at least 12 characters; see
    ``AUTH_PASSWORD_VALIDATORS``), or ``django.core.exceptions.ValidationError`` is raised.
    With ``exist_ok`` an existing user is kept and made an operator; a given password is set
    again (which revokes its tokens) and ``with_token`` issues a new token, so a setup script
    can run any number of times. A token is returned once and never stored in clear.
    """
    user_model = get_user_model()
    with transaction.atomic():
        operator, created = user_model.objects.get_or_create(username=username)
        if not created and not exist_ok:
            raise OperatorExists(f"Operator {username!r} already exists.")
        if password is not None:
            password_validation.validate_password(password, operator)
            operator.set_password(password)
        elif created:
            operator.set_unusable_password()
        operator.save()
        operator.groups.add(operators_group_ensure())
        if created:
            audit_record(
                actor="system",
                action=AuditAction.OPERATOR_CREATE,
                target_type="user",
                target_id=operator.pk,
                details={"username": username, "token": with_token, "password": password is not None},
            )
        token = token_issue(user=operator, actor="system") if with_token else None
    return OperatorCreated(operator=operator, created=created, token=token)


def token_issue(*, user: User, actor: str) -> str:
    """A new API token for ``user``, valid for ``SOFIIA_TOKEN_TTL_DAYS``. Only its digest is
    stored: this is the one time the token can be read."""
    expires_at = clock_now() + timedelta(days=settings.SOFIIA_TOKEN_TTL_DAYS)
    while True:
        token = secrets.token_hex(TOKEN_BYTES)
        try:
            with transaction.atomic():
                record = ApiToken.objects.create(
                    user=user, prefix=token[: ApiToken.PREFIX_LENGTH], digest=token_digest(token), expires_at=expires_at
                )
                audit_record(
                    actor=actor,
                    action=AuditAction.TOKEN_CREATE,
                    target_type="token",
                    target_id=record.prefix,
                    details={"username": user.get_username(), "expires_at": expires_at.isoformat()},
                )
        except IntegrityError:
            continue  # the prefix is taken (one chance in four billion): draw again
        return token


def tokens_revoke(*, user: User, actor: str, reason: str) -> int:
    """Revoke every API token of ``user``; returns how many there were."""
    prefixes = list(ApiToken.objects.filter(user=user).values_list("prefix", flat=True))
    if not prefixes:
        return 0
    with transaction.atomic():
        ApiToken.objects.filter(user=user).delete()
        audit_record(
            actor=actor,
            action=AuditAction.TOKEN_DELETE,
            target_type="user",
            target_id=user.pk,
            details={"username": user.get_username(), "prefixes": prefixes, "reason": reason},
        )
    return len(prefixes)
