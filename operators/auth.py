"""Operator authentication and authorisation.

API: ``Authorization: Bearer <token>`` against the hashed tokens of ``operators.models``, or
a console session. Both the API (``IsOperator``, DRF's default permission) and the console
(``operator_required``) then require the operator role; anyone else authenticated gets 403
and an ``authz.denied`` audit event.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef
from django.http import HttpRequest, HttpResponse
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from audit.actions import AuditAction, AuditOutcome
from operators.models import ApiToken
from operators.roles import OPERATORS_GROUP, is_operator, remember_role
from operators.tokens import TOKEN_FORMAT, token_digest
from sofiia.lib.clock import clock_now


class BearerTokenAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[User, None] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Invalid token header: give `Bearer <token>`.")
        try:
            token = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        return token_user(token), None

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


def token_user(token: str) -> User:
    """The active user ``token`` belongs to; ``AuthenticationFailed`` for anything else."""
    record = (
        ApiToken.objects.select_related("user")
        .annotate(operator=Exists(Group.objects.filter(name=OPERATORS_GROUP, user=OuterRef("user"))))
        .filter(prefix=token[: ApiToken.PREFIX_LENGTH])
        .first()
        if TOKEN_FORMAT.match(token)
        else None
    )
    if record is None or not hmac.compare_digest(record.digest, token_digest(token)):
        raise exceptions.AuthenticationFailed("Invalid token.")
    if record.expires_at <= clock_now():
        record.delete()
        raise exceptions.AuthenticationFailed("Token expired: ask for a new one (create_operator --token).")
    if not record.user.is_active:
        raise exceptions.AuthenticationFailed("User inactive or deleted.")
    # The role came with the token, in the same query: IsOperator asks no more.
    remember_role(record.user, is_operator=record.operator)
    return record.user


class Forbidden(exceptions.PermissionDenied):
    default_code = "forbidden"
    default_detail = "This account does not hold the operator role."


class IsOperator(BasePermission):
    """Authenticated, and an operator: the default permission of the API."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not getattr(user, "is_authenticated", False):
            return False  # DRF answers 401
        if is_operator(user):
            return True
        authz_denied(user, surface="api", path=request.path)
        raise Forbidden()


def operator_role_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The operator role for a console view whose user is already logged in (403 otherwise)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not is_operator(request.user):
            authz_denied(request.user, surface="console", path=request.path)
            raise PermissionDenied(Forbidden.default_detail)
        return view(request, *args, **kwargs)

    return wrapped


def operator_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """``login_required`` for console views, then the operator role (403 otherwise)."""
    return login_required(operator_role_required(view))


def authz_denied(user: Any, *, surface: str, path: str) -> None:
    # Imported here: DRF imports this module (its settings name the classes above) while
    # audit.services, which imports DRF, is itself still being imported.
    from audit.services import audit_record_budgeted

    audit_record_budgeted(
        budget_key=f"user:{user.pk}",
        actor=user.get_username(),
        action=AuditAction.AUTHZ_DENIED,
        outcome=AuditOutcome.DENIED,
        target_type="user",
        target_id=user.pk,
        details={"via": surface, "path": path[:200]},
    )


def authenticated_operator(request: Request | HttpRequest) -> User:
    """The operator of a request that passed ``IsOperator`` or ``operator_required``."""
    user = request.user
    if not isinstance(user, User) or not user.is_authenticated:
        raise exceptions.NotAuthenticated()
    return user
