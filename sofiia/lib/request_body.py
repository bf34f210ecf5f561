"""Request bodies are read before anything else looks at the request.

- **Slow bodies.** The body is read first, within ``SOFIIA_REQUEST_BODY_TIMEOUT`` seconds in
  all, before authentication or any database work: a client trickling its body holds one
  parked greenlet and nothing else (no pooled database connection), and is answered
  ``408`` when its time is up. The deadline needs gevent's cooperative sockets; under the
  ``gthread`` worker the proxy's read timeout is what cuts a slow body off.
- **Bodies over the limit** (``DATA_UPLOAD_MAX_MEMORY_SIZE``) are read and thrown away, up to
  :data:`DRAIN_MAX_BYTES`, before the ``413`` answer. Answering first and closing with the
  body unread makes the kernel reset the connection, and the client sees a reset instead
  of the answer; a body larger than the drain bound is answered at once and the
  connection closed (the proxy refuses such bodies before they get here).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.http.request import UnreadablePostError

from sofiia.lib.errors import json_error
from sofiia.lib.paths import is_api_path

logger = logging.getLogger(__name__)

DRAIN_MAX_BYTES = 16 * 1024 * 1024
_CHUNK = 64 * 1024
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class BodyTimeout(Exception):
    """The client did not send its whole body in time."""


def _cooperative_sockets() -> bool:
    try:
        from gevent import monkey
    except ImportError:
        return False
    return bool(monkey.is_module_patched("socket"))


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    if not _cooperative_sockets():
        yield
        return
    import gevent

    with gevent.Timeout(seconds, BodyTimeout):
        yield


def _declared_length(request: HttpRequest) -> int:
    try:
        return max(0, int(request.META.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0


class RequestBodyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method not in _BODY_METHODS:
            return self.get_response(request)
        length = _declared_length(request)
        if length == 0:
            return self.get_response(request)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        too_large = limit is not None and length > limit
        try:
            with _deadline(settings.SOFIIA_REQUEST_BODY_TIMEOUT):
                if too_large:
                    _drain(request, min(length, DRAIN_MAX_BYTES))
                else:
                    request.body  # noqa: B018 - read now, while nothing else is held
        except BodyTimeout:
            logger.warning("request.body_timeout", extra={"path": request.path, "content_length": length})
            return _refusal(request, 408, "request_timeout", "The request body did not arrive in time.")
        except UnreadablePostError:
            return _refusal(request, 400, "bad_request", "The request body could not be read.")
        if too_large:
            logger.warning("request.body_too_large", extra={"path": request.path, "content_length": length})
            return _refusal(request, 413, "payload_too_large", "The request body is too large.")
        return self.get_response(request)


def _drain(request: HttpRequest, size: int) -> None:
    left = size
    try:
        while left > 0:
            chunk = request.read(min(_CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
    except OSError:
        return  # the client went away: there is nobody left to answer


def _refusal(request: HttpRequest, status: int, code: str, detail: str) -> HttpResponse:
    if is_api_path(request.path):
        response: HttpResponse = json_error(status, code, detail)
    else:
        response = HttpResponse(detail, status=status, content_type="text/plain; charset=utf-8")
    # Answered before the middleware that would add it: without a length the answer is
    # chunked, which a client cut off mid-body handles worst.
    response["Content-Length"] = str(len(response.content))
    return response
