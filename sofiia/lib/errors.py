"""One error type and one translation into the contract's JSON error body.

Services raise :class:`ApplicationError` with a stable snake_case ``code``; the DRF
exception handler renders it (and DRF's own exceptions) as
``{"error": code, "detail": text, ...}``. :class:`ApiJsonErrorsMiddleware` catches what
happens outside DRF (unknown URLs, oversized bodies, CSRF failures, crashes) so nothing
under ``/api/`` is ever answered with an HTML page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from sofiia.lib.paths import is_api_path

logger = logging.getLogger(__name__)

# How long a client is told to wait when a dependency is away: a PostgreSQL restart takes
# a few seconds.
DEPENDENCY_RETRY_AFTER_SECONDS = 5

_CODES_BY_STATUS = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}


class ApplicationError(Exception):
    """A failure with a stable error code, an HTTP status and optional extra body fields."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        status: int | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})


class DatabaseUnavailable(ApplicationError):
    status = 503
    code = "database_unavailable"


def is_database_outage(exc: BaseException) -> bool:
    """Did the database fail to answer (unreachable, restarting, out of connections or disk)?

    Django raises ``OperationalError`` and ``InterfaceError`` for those, whatever the backend:
    a refused or broken connection, a pool that timed out, SQLite's full disk or lock
    timeout. Errors in the query itself are ``ProgrammingError``/``DataError`` and stay bugs.
    """
    return isinstance(exc, (OperationalError, InterfaceError))


def database_unavailable() -> DatabaseUnavailable:
    return DatabaseUnavailable(
        "The database is unavailable; retry shortly.",
        headers={"Retry-After": str(DEPENDENCY_RETRY_AFTER_SECONDS)},
    )


def code_for_status(status: int) -> str:
    if status in _CODES_BY_STATUS:
        return _CODES_BY_STATUS[status]
    return "server_error" if status >= 500 else "client_error"


def error_body(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"error": code, "detail": detail, **extra}


def json_error(
    status: int, code: str, detail: str, *, headers: Mapping[str, str] | None = None, **extra: Any
) -> JsonResponse:
    response = JsonResponse(error_body(code, detail, **extra), status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _flatten_validation(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF validation details as ``{"field": ["message", ...]}``, nested keys dotted."""
    if isinstance(detail, dict):
        fields: dict[str, list[str]] = {}
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            fields.update(_flatten_validation(value, name))
        return fields
    if isinstance(detail, list) and detail and all(not isinstance(d, (dict, list)) for d in detail):
        return {prefix or "non_field_errors": [str(d) for d in detail]}
    if isinstance(detail, list):
        fields = {}
        for index, value in enumerate(detail):
            fields.update(_flatten_validation(value, f"{prefix}.{index}" if prefix else str(index)))
        return fields
    return {prefix or "non_field_errors": [str(detail)]}


def validation_error(detail: Any) -> ApplicationError:
    """Validation errors (DRF's ``serializer.errors``) as the contract's ``invalid_input``:
    the first problem in ``detail``, every field's in ``fields``."""
    fields = _flatten_validation(detail)
    first_field, messages = next(iter(fields.items()), ("", ["Invalid input."]))
    text = f"{first_field}: {messages[0]}" if first_field != "non_field_errors" else messages[0]
    return ApplicationError(text, code="invalid_input", status=400, extra={"fields": fields})


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if is_database_outage(exc):
        _log_outage(exc)
        exc = database_unavailable()
    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.code, exc.detail, **exc.extra), status=exc.status, headers=exc.headers)
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body("payload_too_large", "The request body is too large."), status=413)
    if isinstance(exc, drf_exceptions.ValidationError):
        exc = validation_error(exc.detail)
        return Response(error_body(exc.code, exc.detail, **exc.extra), status=exc.status)

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # an unexpected error: Django logs it and the middleware answers 500 JSON
    if isinstance(exc, drf_exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.default_detail)
    else:  # Http404 and PermissionDenied, which DRF maps to responses itself
        code = code_for_status(response.status_code)
        detail = HTTPStatus(response.status_code).phrase
    response.data = error_body(str(code), str(detail))
    return response


class ApiJsonErrorsMiddleware:
    """Answers every error under ``/api/`` with the contract's JSON body.

    Django produces some errors before or outside DRF: the resolver's 404, 400 for an
    oversized body, CSRF's 403, the 500 page (or the debug page with ``DEBUG`` on).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not is_api_path(request.path) or response.status_code < 400:
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        status = response.status_code
        replacement = json_error(status, code_for_status(status), HTTPStatus(status).phrase)
        for header in ("Retry-After", "Allow", "WWW-Authenticate", "X-Request-ID"):
            if header in response:
                replacement[header] = response[header]
        return replacement

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if not is_api_path(request.path):
            return None
        if is_database_outage(exc):
            _log_outage(exc)
            outage = database_unavailable()
            return json_error(outage.status, outage.code, outage.detail, headers=outage.headers)
        if isinstance(exc, RequestDataTooBig):
            return json_error(413, "payload_too_large", "The request body is too large.")
        if isinstance(exc, Http404):
            return json_error(404, "not_found", "Not found.")
        if isinstance(exc, PermissionDenied):
            return json_error(403, "permission_denied", "Permission denied.")
        if isinstance(exc, SuspiciousOperation):
            return json_error(400, "bad_request", "Bad request.")
        logger.error(
            "unhandled_exception",
            exc_info=exc,
            extra={"path": request.path, "method": request.method},
        )
        return json_error(500, "internal_error", "Internal server error.")


def _log_outage(exc: BaseException) -> None:
    logger.error("database.unavailable", extra={"error": f"{type(exc).__name__}: {str(exc)[:300]}"})
