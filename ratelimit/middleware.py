from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

from chats.middleware import SendPathMiddleware, send_request_of
from ratelimit.services import Decision, ratelimit_headers, ratelimit_hit, ratelimit_peek
from sofiia.lib.errors import json_error


class RateLimitMiddleware(SendPathMiddleware):
    """Per-chat and per-operator limits in front of the send view.

    Placed after the idempotency middleware: a request answered from the idempotency cache
    never reaches this ``process_view`` and spends nothing. Every send answer for a known
    operator carries the ``RateLimit-Policy`` and ``RateLimit`` headers.
    """

    def finish(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        decision: Decision | None = getattr(request, "_sofiia_ratelimit", None)
        if decision is None:
            send = send_request_of(request)
            if send is None:
                return response
            decision = ratelimit_peek(operator=send.operator, chat_id=send.chat_id)
        for name, value in ratelimit_headers(decision).items():
            response[name] = value
        return response

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], view_args: Any, view_kwargs: dict[str, Any]
    ) -> HttpResponse | None:
        send = send_request_of(request)
        if send is None:
            return None
        decision = ratelimit_hit(operator=send.operator, chat_id=send.chat_id)
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
