"""Which HTTP methods a URL takes, decided before anything else looks at the request.

A request whose method its URL's view does not take is answered ``405`` with ``Allow`` here,
before the session, CSRF or authentication: a ``PUT /livez`` or a ``QUERY /api/chats`` is a
wrong method, not a missing CSRF token, and an unknown method costs nothing further. ``HEAD``
is served wherever ``GET`` is, by the ``GET`` view, with no body.

What a view takes is read from what it declares already, so a new route needs no list kept
here: a class-based view (Django's or DRF's) takes the methods it has handlers for; a
function view declares them with Django's ``require_http_methods`` (``require_GET``,
``require_POST``, ``require_safe``) or by an ``allowed_methods`` attribute. A function view
that declares nothing (the admin's, ``set_language``) takes ``GET``, ``HEAD`` and ``POST``:
what an HTML form can send.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve
from django.views.decorators.http import require_http_methods

from sofiia.lib.errors import error_body

# The methods a request's metrics may name (sofiia.lib.request_metrics) and the order of
# an ``Allow`` header; any other method is ``other`` there.
KNOWN_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
UNDECLARED_METHODS = frozenset({"GET", "HEAD", "POST"})

# The code of the view Django's ``require_http_methods`` wraps around a function: its
# closure holds the method list.
_REQUIRE_CODE = require_http_methods(["GET"])(lambda request: None).__code__
_REQUIRE_FREEVAR = "request_method_list"


def _declared_by_class(view_class: type) -> frozenset[str]:
    names: Iterable[str] = getattr(view_class, "http_method_names", ())
    declared = {name.upper() for name in names if hasattr(view_class, name)}
    # Django's View.setup() serves HEAD with ``get`` when the class has no ``head``.
    if "GET" in declared:
        declared.add("HEAD")
    return frozenset(declared)


def _declared_by_require(func: Any) -> frozenset[str] | None:
    code = getattr(func, "__code__", None)
    if code is not _REQUIRE_CODE or func.__closure__ is None:
        return None
    cell = func.__closure__[code.co_freevars.index(_REQUIRE_FREEVAR)]
    return frozenset(method.upper() for method in cell.cell_contents)


@lru_cache(maxsize=1024)
def view_methods(view: Callable[..., Any]) -> frozenset[str]:
    """The methods ``view`` declares (without the ``HEAD`` that ``GET`` implies)."""
    func: Any = view
    for _ in range(50):  # a chain of decorators, each pointing at what it wraps
        declared = getattr(func, "allowed_methods", None)
        if isinstance(declared, (frozenset, set, tuple, list)):
            return frozenset(method.upper() for method in declared)
        view_class = getattr(func, "view_class", None)
        if isinstance(view_class, type):
            return _declared_by_class(view_class)
        from_require = _declared_by_require(func)
        if from_require is not None:
            return from_require
        wrapped = getattr(func, "__wrapped__", None)
        if wrapped is None:
            break
        func = wrapped
    return UNDECLARED_METHODS


def allowed_methods(view: Callable[..., Any]) -> frozenset[str]:
    declared = view_methods(view)
    return declared | {"HEAD"} if "GET" in declared else declared


def allow_header(methods: Iterable[str]) -> str:
    order = {method: index for index, method in enumerate(KNOWN_METHODS)}
    return ", ".join(sorted(methods, key=lambda method: (order.get(method, len(order)), method)))


def method_not_allowed(allowed: Iterable[str]) -> HttpResponse:
    allow = allow_header(allowed)
    body = error_body("method_not_allowed", "This URL does not take this method.", allowed=allow.split(", "))
    response = JsonResponse(body, status=405)
    response["Allow"] = allow
    return response


class MethodGateMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            match = resolve(request.path_info, getattr(request, "urlconf", None))
        except Resolver404:
            return self.get_response(request)  # no route: a 404, whatever the method
        declared = view_methods(match.func)
        method = request.method or ""
        if method in declared:
            response = self.get_response(request)
        elif method == "HEAD" and "GET" in declared:
            response = self._head_as_get(request)
        else:
            return method_not_allowed(allowed_methods(match.func))
        if method == "HEAD":
            _drop_body(response)
        return response

    def _head_as_get(self, request: HttpRequest) -> HttpResponse:
        # GET and HEAD are both safe: nothing the view checks (CSRF, permissions) differs.
        request.method = "GET"
        try:
            return self.get_response(request)
        finally:
            request.method = "HEAD"


def _drop_body(response: HttpResponse) -> None:
    if getattr(response, "streaming", False):
        close = getattr(response, "close", None)
        if close is not None:
            close()
        response.streaming_content = []  # type: ignore[attr-defined]
    else:
        response.content = b""
