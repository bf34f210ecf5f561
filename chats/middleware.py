"""The idempotency middleware in front of the two send views (the API's and the console's).

Applied per view in the URLconfs (:func:`idempotent`, Django's
``decorator_from_middleware_with_args``), inside the send gate and after the authentication
middlewares, which set ``request.user`` lazily: the first thing this middleware does is ask
who the operator is, so that lookup happens once, inside the gate. It owns what the
``Idempotency-Key`` promises (``chats.idempotency``): the key's syntax, the claim in the
cache, the replay of a delivered key, 409 for a key in flight, 422 for a key reused with
another text, the release of the claim on any refusal, and recording the outcome on the way
out. The view behind it runs the send pipeline (``chats.sending``) on the input read here,
once: the text is validated by the one definition both surfaces share
(``chats.serializers.SendInputSerializer``).

Each surface says how it reads a send and how it answers a refusal or a replay
(:class:`SendSurface`): JSON for the API, a message and a redirect for the console.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponseBase
from django.utils.decorators import decorator_from_middleware_with_args

from chats.idempotency import Delivered, IdempotencyClaim, checked_key, idempotency_claim
from chats.metrics import IDEMPOTENCY_REQUESTS
from chats.models import Message
from chats.services import SendOutcome, message_replay_record
from operators.roles import is_operator
from sofiia.lib.errors import ApplicationError

logger = logging.getLogger(__name__)

_SEND_ATTRIBUTE = "idempotent_send"
_RESULTS_BY_CODE = {"idempotency_key_in_flight": "conflict", "idempotency_key_reused": "mismatch"}


class SendSurface(Protocol):
    def read(self, request: HttpRequest) -> tuple[str, str | None]:
        """The send's validated text and its key as received (``ApplicationError`` for bad input)."""

    def refused(self, request: HttpRequest, chat_id: int, refusal: ApplicationError) -> HttpResponseBase:
        """The answer to a send refused before it reached the pipeline."""

    def replayed(self, request: HttpRequest, chat_id: int, outcome: SendOutcome) -> HttpResponseBase:
        """The answer to a key the cache knows as delivered."""


@dataclass
class IdempotentSend:
    """What the middleware hands the send view: the checked input, and what the view reports back."""

    text: str
    key: str
    claim: IdempotencyClaim
    outcome: SendOutcome | None = None
    refusal: ApplicationError | None = None


def idempotent_send_of(request: Any) -> IdempotentSend:
    """The send the idempotency middleware read for this request's view."""
    send = getattr(request, _SEND_ATTRIBUTE, None)
    if not isinstance(send, IdempotentSend):
        raise TypeError("a send view must be wrapped by chats.middleware.idempotent()")
    return send


class IdempotencyMiddleware:
    def __init__(self, get_response: Callable[..., HttpResponseBase], *, surface: SendSurface) -> None:
        self.get_response = get_response
        self.surface = surface

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], view_args: Any, view_kwargs: dict[str, Any]
    ) -> HttpResponseBase | None:
        operator = request.user
        if request.method != "POST" or not is_operator(operator) or not isinstance(operator, User):
            return None  # the view answers: 405, 401, a login page or 403
        chat_id: int = view_kwargs["chat_id"]
        try:
            text, raw_key = self.surface.read(request)
            key = checked_key(raw_key)
        except ApplicationError as refusal:
            return self.surface.refused(request, chat_id, refusal)
        try:
            claim = idempotency_claim(operator_id=operator.pk, chat_id=chat_id, key=key, text=text)
        except ApplicationError as refusal:
            _count(_RESULTS_BY_CODE[refusal.code])
            return self.surface.refused(request, chat_id, refusal)
        if claim.delivered is not None:
            outcome = _replay_from_cache(operator, chat_id=chat_id, key=key, delivered=claim.delivered)
            if outcome is not None:
                _count("replay")
                return self.surface.replayed(request, chat_id, outcome)
        setattr(request, _SEND_ATTRIBUTE, IdempotentSend(text=text, key=key, claim=claim))
        return None

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        send = getattr(request, _SEND_ATTRIBUTE, None)
        if send is not None:
            send.claim.release()
            _count("miss")

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        send: IdempotentSend | None = getattr(request, _SEND_ATTRIBUTE, None)
        if send is None:
            return response
        if send.outcome is not None:
            outcome = send.outcome
            send.claim.complete(Delivered(outcome.operator_message.pk, outcome.reply.pk))
            _count("replay" if outcome.replayed else "miss")
        else:
            send.claim.release()
            _count(_RESULTS_BY_CODE.get(send.refusal.code, "miss") if send.refusal is not None else "miss")
        return response


idempotent = decorator_from_middleware_with_args(IdempotencyMiddleware)


def _replay_from_cache(operator: User, *, chat_id: int, key: str, delivered: Delivered) -> SendOutcome | None:
    messages = {
        m.pk: m
        for m in Message.objects.filter(
            pk__in=(delivered.operator_message_id, delivered.reply_id), chat_id=chat_id, chat__owner=operator
        )
    }
    sent, reply = messages.get(delivered.operator_message_id), messages.get(delivered.reply_id)
    if sent is None or reply is None:
        return None  # deleted since: the pipeline and the database decide
    message_replay_record(operator=operator, message=sent, key=key, source="cache")
    return SendOutcome(operator_message=sent, reply=reply, replayed=True)


def _count(result: str) -> None:
    """One count per send with a valid key: replay, conflict (409), mismatch (422) or miss."""
    IDEMPOTENCY_REQUESTS.labels(result=result).inc()
    if result in ("conflict", "mismatch"):
        logger.info(f"idempotency.{result}")
