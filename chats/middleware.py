from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse

from audit.services import audit_record
from chats.idempotency import Claim, idempotency_begin, idempotency_count, idempotency_finish, result_of
from chats.idempotency_keys import idempotency_key_from
from sofiia.lib.auth import operator_from_request
from sofiia.lib.errors import ApplicationError, json_error

SEND_VIEW_NAME = "chat-send"


def is_send_request(request: HttpRequest) -> bool:
    match = request.resolver_match
    return request.method == "POST" and match is not None and match.view_name == SEND_VIEW_NAME


@dataclass(frozen=True)
class SendRequest:
    operator: User
    chat_id: int


_SEND_REQUEST_MEMO = "_sofiia_send_request"


def send_request_of(request: HttpRequest) -> SendRequest | None:
    """Operator and chat of a send request with valid credentials; ``None`` for any other
    request, and for one without credentials, which the view then answers with 401.

    Both send-path middlewares ask, on the way in and out: the answer is worked out once.
    """
    if hasattr(request, _SEND_REQUEST_MEMO):
        return getattr(request, _SEND_REQUEST_MEMO)
    send: SendRequest | None = None
    if is_send_request(request):
        operator = operator_from_request(request)
        if operator is not None:
            send = SendRequest(operator=operator, chat_id=int(request.resolver_match.kwargs["chat_id"]))  # type: ignore[union-attr]
    setattr(request, _SEND_REQUEST_MEMO, send)
    return send


class SendPathMiddleware:
    """Base of the middleware in front of the send view: it acts in ``process_view``, once
    the URL is resolved, and finishes in ``__call__`` on the way out."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.finish(request, self.get_response(request))

    def finish(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        return response


class IdempotencyMiddleware(SendPathMiddleware):
    """The idempotency fast path in front of the send view (see ``chats.idempotency``).

    It runs before the rate limiter: a replay, a 409 or a 422 answered here never spends
    quota. Requests without a valid operator pass through untouched so the view answers 401.
    """

    def finish(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        state: tuple[Claim | None, str, int] | None = getattr(request, "_sofiia_idempotency", None)
        if state is not None:
            claim, operator, chat_id = state
            if claim is not None:
                idempotency_finish(claim, response)
            idempotency_count(result_of(response), chat_id=chat_id, operator=operator)
        return response

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], view_args: Any, view_kwargs: dict[str, Any]
    ) -> HttpResponse | None:
        send = send_request_of(request)
        if send is None:
            return None
        operator, chat_id = send.operator, send.chat_id
        try:
            key = idempotency_key_from(request)
        except ApplicationError as exc:
            return json_error(exc.status, exc.code, exc.detail)
        try:
            body = request.body
        except RequestDataTooBig:
            return json_error(413, "payload_too_large", "The request body is too large.")
        begin = idempotency_begin(operator_id=operator.pk, chat_id=chat_id, key=key, body=body)
        if begin.response is not None:
            assert begin.result is not None
            idempotency_count(begin.result, chat_id=chat_id, operator=operator.get_username())
            if begin.result == "replay":
                audit_record(
                    actor=operator.get_username(),
                    action="message.replay",
                    target_type="message",
                    target_id=begin.message_id,
                    chat_id=chat_id,
                    details={"source": "cache", "idempotency_key": key},
                )
            return begin.response
        request._sofiia_idempotency = (begin.claim, operator.get_username(), chat_id)  # type: ignore[attr-defined]
        return None
