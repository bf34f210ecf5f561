"""Audit events for logins and logouts.

Console and admin logins go through Django's own views, which report them only through
the auth signals: receiving those is the one place every login path passes. Each
receiver is a single ``audit_record`` call.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.http import HttpRequest

from audit.actions import AuditAction, AuditOutcome
from audit.services import audit_record, audit_record_budgeted
from sofiia.lib.request_id import current_request


def login_surface(request: HttpRequest | None) -> str:
    """Which login form a request came through: ``console``, ``admin`` or ``other``."""
    path = getattr(request, "path", "") or ""
    if path.startswith("/admin/"):
        return "admin"
    if path.startswith("/console/"):
        return "console"
    return "other"


def _logged_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    audit_record(
        actor=user.get_username(),
        action=AuditAction.AUTH_LOGIN,
        target_type="user",
        target_id=user.pk,
        details={"via": login_surface(request)},
    )


def _login_failed(sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any) -> None:
    # The credentials arrive cleansed (the password is masked); only the name is kept.
    username = str(credentials.get("username") or "")
    context = current_request()
    # Budgeted per client address, like refused audit reads: guessing cannot flood the chain.
    audit_record_budgeted(
        budget_key=f"address:{context.ip if context and context.ip else 'unknown'}",
        actor=username[:150] or "anonymous",
        action=AuditAction.AUTH_LOGIN_FAILED,
        outcome=AuditOutcome.FAILURE,
        target_type="user",
        details={"via": login_surface(request), "username": username[:150]},
    )


def _logged_out(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if user is None or not user.is_authenticated:
        return  # logging out without a session changes nothing
    audit_record(
        actor=user.get_username(),
        action=AuditAction.AUTH_LOGOUT,
        target_type="user",
        target_id=user.pk,
        details={"via": login_surface(request)},
    )


def connect() -> None:
    user_logged_in.connect(_logged_in, dispatch_uid="audit.auth_login")
    user_login_failed.connect(_login_failed, dispatch_uid="audit.auth_login_failed")
    user_logged_out.connect(_logged_out, dispatch_uid="audit.auth_logout")
