"""Operator authentication for the API: ``Authorization: Bearer <token>`` or a console session."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.http import HttpRequest
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.exceptions import APIException, NotAuthenticated
from rest_framework.request import Request

_UNSET = object()
_MEMO_ATTRIBUTE = "_sofiia_bearer"


class BearerTokenAuthentication(TokenAuthentication):
    """DRF token authentication with the ``Bearer`` keyword.

    The result is memoised on the Django request, so middleware that needs the operator
    before the view (idempotency, rate limits) and the view itself look the token up once.
    """

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        django_request = request._request
        memo = getattr(django_request, _MEMO_ATTRIBUTE, _UNSET)
        if memo is _UNSET:
            try:
                memo = super().authenticate(request)
            except APIException as exc:
                memo = exc
            setattr(django_request, _MEMO_ATTRIBUTE, memo)
        if isinstance(memo, APIException):
            raise memo
        return memo  # type: ignore[return-value]


def authenticated_operator(request: Request | HttpRequest) -> User:
    """The authenticated operator of a request that passed ``IsAuthenticated``/``login_required``."""
    user = request.user
    if not isinstance(user, User) or not user.is_authenticated:
        raise NotAuthenticated()
    return user


def operator_from_request(request: HttpRequest) -> User | None:
    """The operator a request speaks for, or ``None`` when it carries no valid credentials.

    Session users count only when the request passes the CSRF check, exactly as DRF's
    session authentication decides for the view behind.
    """
    drf_request = Request(request)
    for authenticator in (BearerTokenAuthentication(), SessionAuthentication()):
        try:
            result = authenticator.authenticate(drf_request)
        except APIException:
            return None
        if result is not None:
            return result[0]
    return None
