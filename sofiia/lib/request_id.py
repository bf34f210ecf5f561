"""Request context: the request id, the client address and user agent. Log lines and audit
events read it from a context variable, so services never need the request object.

The request id is taken from ``X-Request-ID`` only when a trusted proxy
(``SOFIIA_TRUSTED_PROXIES``) forwarded the request and the value is sane; otherwise it is
generated here. A client's own value would otherwise be written into the audit trail as the
id of its request, letting it forge correlations. What a client sent is still logged, on the
access line only (``client_request_id``), cut short and stripped to safe characters.
The id is echoed on every answer."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse

from sofiia.lib.client_ip import client_ip, from_trusted_proxy

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")
_UNSAFE_CHARACTERS = re.compile(r"[^A-Za-z0-9._:@-]")
CLIENT_REQUEST_ID_MAX_LENGTH = 64


@dataclass(frozen=True)
class RequestContext:
    request_id: str
    ip: str | None
    user_agent: str


request_context_var: ContextVar[RequestContext | None] = ContextVar("request_context", default=None)
access_logger = logging.getLogger("sofiia.access")


def current_request() -> RequestContext | None:
    return request_context_var.get()


def current_request_id() -> str | None:
    context = request_context_var.get()
    return context.request_id if context else None


def request_id_from(request: HttpRequest) -> str:
    supplied = request.headers.get(REQUEST_ID_HEADER, "")
    if _VALID_REQUEST_ID.match(supplied) and from_trusted_proxy(request):
        return supplied
    return uuid.uuid4().hex


def client_request_id(request: HttpRequest, request_id: str) -> str | None:
    """What an untrusted client sent as its request id, for the access log: bounded and
    reduced to safe characters (``None`` when it sent none or it is the request's id)."""
    supplied = request.headers.get(REQUEST_ID_HEADER)
    if not supplied or supplied == request_id:
        return None
    return _UNSAFE_CHARACTERS.sub("_", supplied[:CLIENT_REQUEST_ID_MAX_LENGTH])


def _operator_name(request: HttpRequest) -> str | None:
    user = getattr(request, "user", None)
    try:
        # A session user is loaded lazily, from the database: when that is away, the access
        # line is still written, without the name.
        return user.get_username() if user is not None and user.is_authenticated else None
    except Exception:
        return None


class RequestIdMiddleware:
    """Sets the request context and writes one access log line when the request is answered."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        context = RequestContext(
            request_id=request_id_from(request),
            ip=client_ip(request),
            user_agent=request.headers.get("User-Agent", "")[:512],
        )
        request.request_id = context.request_id  # type: ignore[attr-defined]
        token = request_context_var.set(context)
        started = time.monotonic()
        try:
            response = self.get_response(request)
            response[REQUEST_ID_HEADER] = context.request_id
            access_logger.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round((time.monotonic() - started) * 1000, 1),
                    "operator": _operator_name(request),
                    "ip": context.ip,
                    "client_request_id": client_request_id(request, context.request_id),
                },
            )
            return response
        finally:
            request_context_var.reset(token)
