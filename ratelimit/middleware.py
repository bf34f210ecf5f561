from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

from chats.middleware import is_send_request
from ratelimit.services import Decision, ratelimit_headers, ratelimit_hit, ratelimit_peek
from sofiia.lib.auth import operator_from_request
from sofiia.lib.errors import json_error


class RateLimitMiddleware:
    """Per-chat and per-operator limits in front of the send view.

    Placed after the idempotency middleware: a request answered from the idempotency cache
    never reaches this ``process_view`` and spends nothing. Every send answer for a known
    operator carries the ``RateLimit-Policy`` and ``RateLimit`` headers.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not is_send_request(request):
            return response
        decision: Decision | None = getattr(request, "_sofiia_ratelimit", None)
        if decision is None:
            operator = operator_from_request(request)
            if operator is None:
                return response
            chat_id = int(request.resolver_match.kwargs["chat_id"])  # type: ignore[union-attr]
            decision = ratelimit_peek(operator=operator, chat_id=chat_id)
        for name, value in ratelimit_headers(decision).items():
            response[name] = value
        return response

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], view_args: Any, view_kwargs: dict[str, Any]
    ) -> HttpResponse | None:
        if not is_send_request(request):
            return None
        operator = operator_from_request(request)
        if operator is None:
            return None
        decision = ratelimit_hit(operator=operator, chat_id=int(view_kwargs["chat_id"]))
        request._sofiia_ratelimit = decision  # type: ignore[attr-defined]
        if decision.allowed:
            return None
        if decision.backend_failed:
            return json_error(
                503, "rate_limit_unavailable", "Rate limits cannot be checked right now; retry shortly.",
                headers={"Retry-After": "5"},
            )  # fmt: skip
        return json_error(
            429,
            "rate_limited",
            f"Too many sends for this {decision.blocked_scope}; retry in {decision.retry_after} s.",
            headers={"Retry-After": str(decision.retry_after)},
            scope=decision.blocked_scope,
            retry_after=decision.retry_after,
        )
