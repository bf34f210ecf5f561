"""Login defences for the console and the admin.

Failed logins are limited in three windows (sliding, ``N/SECONDS``), none of which lets a
guesser lock a user out from where the user is:

- per user *and* client address (``SOFIIA_LOGIN_LIMIT_USERNAME``, 5 per 15 min): the guesser
  is stopped, the user logging in from anywhere else is not;
- per client address (``SOFIIA_LOGIN_LIMIT_ADDRESS``, 30 per 15 min): one address spraying
  many user names;
- per user across all addresses (``SOFIIA_LOGIN_LIMIT_USER_CEILING``, 100 per 15 min): a
  distributed guesser. It is high on purpose — twenty addresses must each spend their whole
  per-user allowance to reach it — because it is the one window a guesser can use against
  the user.

A failed attempt spends one unit of all three, and once any is spent the next attempt is
refused — before the password hasher runs, so guessing costs the server nothing — with the
wait shown. A successful login spends nothing. Attempts racing in parallel are checked before
any of them has failed, so a burst can overshoot a limit by at most its own size.

Every refusal is counted (``sofiia_login_failures_total``) and written as an
``auth.login_failed`` audit event, budgeted per client address like refused audit reads.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest

from audit.actions import AuditAction, AuditOutcome
from audit.services import audit_record_budgeted
from operators.metrics import LOGIN_FAILURES
from sofiia.lib.client_ip import client_ip
from sofiia.lib.limits import limiter_acquire
from sofiia.lib.sliding_window import Window


@dataclass(frozen=True)
class LoginGuard:
    username: str
    address: str
    surface: str  # "console" or "admin"

    def windows(self) -> tuple[Window, ...]:
        user_address = settings.SOFIIA_LOGIN_LIMIT_USERNAME
        by_address = settings.SOFIIA_LOGIN_LIMIT_ADDRESS
        ceiling = settings.SOFIIA_LOGIN_LIMIT_USER_CEILING
        name_key = hashlib.sha256(self.username.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return (
            Window(
                "user_address",
                f"login:user-addr:{name_key}:{self.address}",
                user_address.limit,
                user_address.window,
            ),
            Window("address", f"login:addr:{self.address}", by_address.limit, by_address.window),
            Window("user", f"login:user:{name_key}", ceiling.limit, ceiling.window),
        )

    def check(self) -> None:
        """Refuse the attempt if a limit is spent (when limits cannot be checked, let it through)."""
        outcome = limiter_acquire(self.windows(), consume=False)
        if outcome is None or outcome.allowed:
            return
        scope = outcome.blocked_scope or "user_address"
        wait = max(1, math.ceil(outcome.state(scope).reset_after))
        self.record_failure("throttled", scope=scope, retry_after=wait)
        raise forms.ValidationError(
            "Too many failed logins %(scope)s. Try again in %(wait)s.",
            code="too_many_attempts",
            params={"scope": _REFUSED_SCOPES[scope], "wait": _wait(wait)},
        )

    def failed(self, reason: str) -> None:
        limiter_acquire(self.windows(), consume=True)
        self.record_failure(reason)

    def record_failure(self, reason: str, **details: Any) -> None:
        LOGIN_FAILURES.labels(surface=self.surface, reason=reason).inc()
        if reason == "credentials":
            return  # Django's user_login_failed signal has it audited already (audit.receivers)
        audit_record_budgeted(
            budget_key=f"address:{self.address}",
            actor=self.username[:150] or "anonymous",
            action=AuditAction.AUTH_LOGIN_FAILED,
            outcome=AuditOutcome.FAILURE,
            target_type="user",
            details={"via": self.surface, "username": self.username[:150], "reason": reason, **details},
        )


_REFUSED_SCOPES = {
    "user_address": "for this user from this address",
    "address": "from this address",
    "user": "for this user",
}


def _wait(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} s"
    return f"{math.ceil(seconds / 60)} min"


class _LimitedLogin:
    surface = "console"
    request: HttpRequest | None
    cleaned_data: dict[str, Any]

    def clean(self) -> dict[str, Any]:
        username, password = self.cleaned_data.get("username"), self.cleaned_data.get("password")
        if not username or not password:
            return super().clean()  # type: ignore[misc]
        address = (client_ip(self.request) if self.request is not None else None) or "unknown"
        guard = LoginGuard(username=username, address=address, surface=self.surface)
        guard.check()
        try:
            return super().clean()  # type: ignore[misc]
        except forms.ValidationError as refusal:
            guard.failed("not_allowed" if refusal.code in ("inactive", "invalid_login_not_staff") else "credentials")
            raise


class ConsoleAuthenticationForm(_LimitedLogin, AuthenticationForm):
    surface = "console"


class AdminLoginForm(_LimitedLogin, AdminAuthenticationForm):
    surface = "admin"

    def confirm_login_allowed(self, user: Any) -> None:
        # The password was right; a non-staff account still may not enter the admin.
        try:
            super().confirm_login_allowed(user)
        except forms.ValidationError as refusal:
            refusal.code = "invalid_login_not_staff"
            raise
