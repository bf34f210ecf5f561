"""Operator authentication for the API: ``Authorization: Bearer <token>`` or a console session."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request


class BearerTokenAuthentication(TokenAuthentication):
    """DRF token authentication with the ``Bearer`` keyword."""

    keyword = "Bearer"


def authenticated_operator(request: Request | HttpRequest) -> User:
    """The authenticated operator of a request that passed ``IsAuthenticated``/``login_required``."""
    user = request.user
    if not isinstance(user, User) or not user.is_authenticated:
        raise NotAuthenticated()
    return user
