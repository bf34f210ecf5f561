"""The send pipeline: every send, from the JSON API or the console's form, goes through
:func:`send_pipeline`, in this order:

1. **input** — the text (1..16,000 characters) and the ``Idempotency-Key``, checked once
   for both surfaces;
2. **idempotency** (``chats.idempotency``, the idempotency cache) — a delivered key is
   replayed, a key in flight is 409, a key with another text is 422;
3. **ownership** — another operator's chat, or none, is 404 and spends nothing;
4. **replay from the database** — a key whose message was delivered is replayed even when
   the cache has forgotten it, still without spending quota;
5. **rate limit** (``ratelimit``) — over a limit is 429 with a ``ratelimit.block`` audit event;
6. **delivery** (``chats.services.message_send``) — the node call and the ``message.send``
   audit event.

The outcome is typed (:class:`SendOutcome`); every refusal is an ``ApplicationError`` with
its contract code, raised, carrying the rate-limit headers, and rendered by the surface.
Both surfaces' views are :func:`send_gated`: a send takes its place in the send gate before
its operator is authenticated.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, TypeVar

from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponseBase

from audit.actions import AuditAction
from audit.services import audit_record_budgeted
from chats.idempotency import REPLAYED_HEADER, Delivered, idempotency_guard
from chats.limits import refuse_over_limit
from chats.metrics import IDEMPOTENCY_REQUESTS
from chats.models import MESSAGE_TEXT_MAX_LENGTH, Message
from chats.selectors import chat_get_for_operator
from chats.services import SendResult, message_send, message_send_stored
from ratelimit.services import Decision, ratelimit_headers, ratelimit_hit, ratelimit_peek
from sofiia.lib.db import db_connections_release
from sofiia.lib.errors import ApplicationError
from sofiia.lib.gate import send_gate

logger = logging.getLogger(__name__)

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
_VALID_KEY = re.compile(r"^[\x20-\x7e]{1,255}$")
_SURROGATE = re.compile("[\ud800-\udfff]")


class IdempotencyKeyRequired(ApplicationError):
    code = "idempotency_key_required"


class IdempotencyKeyInvalid(ApplicationError):
    code = "idempotency_key_invalid"


class InvalidText(ApplicationError):
    code = "invalid_input"


@dataclass(frozen=True)
class SendRequest:
    """A send as a surface received it: the text and the key are checked by the pipeline."""

    operator: User
    chat_id: int
    text: Any
    idempotency_key: str | None


@dataclass
class SendOutcome:
    operator_message: Message
    reply: Message
    # True when the key had already delivered this message: nothing was sent again.
    replayed: bool
    headers: dict[str, str] = field(default_factory=dict)


View = TypeVar("View", bound=Callable[..., HttpResponseBase])


def send_gated(view: View) -> View:
    """Run the whole send view — authentication, the body, the pipeline — inside the send gate.

    A burst of sends then costs one parked greenlet per send beyond ``SOFIIA_SENDS_ACTIVE_MAX``
    until its turn: the waiters have not yet queried the database for their operator, so a
    health probe or a page load never queues behind them for a pooled connection or a turn of
    the worker's CPU.
    """

    @wraps(view)
    def gated(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        with _send_gate_held():
            return view(request, *args, **kwargs)

    return gated  # type: ignore[return-value]


def _send_gate_held() -> AbstractContextManager[None]:
    # Waiting at the gate must not hold a pooled connection (a middleware may have taken one):
    # the sends inside the gate need connections to finish, and would wait for the waiters'.
    return send_gate.held(settings.SOFIIA_SENDS_ACTIVE_MAX, before_waiting=db_connections_release)


def send_pipeline(request: SendRequest) -> SendOutcome:
    """Send ``request.text`` to the chat's agent, exactly once per idempotency key.

    At most ``SOFIIA_SENDS_ACTIVE_MAX`` sends per worker run their own steps at once (the
    gate of ``sofiia.lib.gate``, usually entered already by :func:`send_gated`); a send gives
    its place up while its node thinks.
    """
    with _send_gate_held():
        return _send_pipeline(request)


def _send_pipeline(request: SendRequest) -> SendOutcome:
    operator, chat_id = request.operator, request.chat_id
    decision: Decision | None = None
    try:
        text = _checked_text(request.text)
        key = _checked_key(request.idempotency_key)
        try:
            outcome, decision = _deliver_once(operator=operator, chat_id=chat_id, text=text, key=key)
        except ApplicationError as refusal:
            _count(_IDEMPOTENCY_RESULTS.get(refusal.code, "miss"))
            raise
        _count("replay" if outcome.replayed else "miss")
    except ApplicationError as refusal:
        refusal.headers.update(_limit_headers(operator=operator, chat_id=chat_id, decision=decision))
        raise
    outcome.headers.update(_limit_headers(operator=operator, chat_id=chat_id, decision=decision))
    if outcome.replayed:
        outcome.headers[REPLAYED_HEADER] = "true"
    return outcome


def _deliver_once(*, operator: User, chat_id: int, text: str, key: str) -> tuple[SendOutcome, Decision | None]:
    with idempotency_guard(operator_id=operator.pk, chat_id=chat_id, key=key, text=text) as guard:
        if guard.delivered is not None:
            remembered = _replay_from_cache(operator=operator, chat_id=chat_id, delivered=guard.delivered)
            if remembered is not None:
                return _replayed(remembered, operator=operator, key=key, source="cache"), None
        chat = chat_get_for_operator(operator=operator, chat_id=chat_id)
        decision = None
        result = message_send_stored(operator=operator, chat=chat, text=text, idempotency_key=key)
        if result is None:
            decision = ratelimit_hit(operator=operator, chat_id=chat.pk)
            refuse_over_limit(decision, operator=operator, chat=chat)
            result = message_send(operator=operator, chat=chat, text=text, idempotency_key=key)
        if result.replayed:
            outcome = _replayed(result, operator=operator, key=key, source="database")
        else:
            outcome = SendOutcome(operator_message=result.operator_message, reply=result.reply, replayed=False)
        guard.complete(Delivered(outcome.operator_message.pk, outcome.reply.pk))
        return outcome, decision


def _checked_text(text: Any) -> str:
    if text is None:
        problem = "This field is required."
    elif not isinstance(text, str):
        problem = "Not a valid string."
    elif text == "":
        problem = "This field may not be blank."
    elif len(text) > MESSAGE_TEXT_MAX_LENGTH:
        problem = f"Ensure this field has no more than {MESSAGE_TEXT_MAX_LENGTH} characters."
    elif "\x00" in text:
        problem = "Null characters are not allowed."
    elif _SURROGATE.search(text):
        # A lone surrogate (JSON "\ud800") is no character: the database cannot store it.
        problem = "Surrogate characters are not allowed."
    else:
        return text
    raise InvalidText(f"text: {problem}", extra={"fields": {"text": [problem]}})


def _checked_key(raw: str | None) -> str:
    if raw is None or raw.strip() == "":
        raise IdempotencyKeyRequired(f"Send the {IDEMPOTENCY_KEY_HEADER} header: 1 to 255 printable ASCII characters.")
    # WSGI hands header bytes over as latin-1; anything outside printable ASCII is refused.
    if not _VALID_KEY.match(raw):
        raise IdempotencyKeyInvalid(f"{IDEMPOTENCY_KEY_HEADER} must be 1 to 255 printable ASCII characters.")
    return raw


def _replay_from_cache(*, operator: User, chat_id: int, delivered: Delivered) -> SendResult | None:
    messages = {
        m.pk: m
        for m in Message.objects.filter(
            pk__in=(delivered.operator_message_id, delivered.reply_id), chat_id=chat_id, chat__owner=operator
        )
    }
    sent, reply = messages.get(delivered.operator_message_id), messages.get(delivered.reply_id)
    if sent is None or reply is None:
        return None  # deleted since: the database decides
    return SendResult(operator_message=sent, reply=reply, replayed=True)


def _replayed(result: SendResult, *, operator: User, key: str, source: str) -> SendOutcome:
    message = result.operator_message
    audit_record_budgeted(
        budget_key=f"operator:{operator.pk}",
        actor=operator.get_username(),
        action=AuditAction.MESSAGE_REPLAY,
        target_type="message",
        target_id=message.pk,
        chat_id=message.chat_id,
        details={"source": source, "idempotency_key": key},
    )
    logger.info("idempotency.replay", extra={"chat_id": message.chat_id, "operator": operator.get_username()})
    return SendOutcome(operator_message=message, reply=result.reply, replayed=True)


def _limit_headers(*, operator: User, chat_id: int, decision: Decision | None) -> dict[str, str]:
    """Every send answer carries the operator's quota: as this send left it, or as it stands."""
    if decision is None:
        decision = ratelimit_peek(operator=operator, chat_id=chat_id)
    return ratelimit_headers(decision)


_IDEMPOTENCY_RESULTS = {"idempotency_key_in_flight": "conflict", "idempotency_key_reused": "mismatch"}


def _count(result: str) -> None:
    """One count per send with a valid key: replay, conflict (409), mismatch (422) or miss."""
    IDEMPOTENCY_REQUESTS.labels(result=result).inc()
    if result in ("conflict", "mismatch"):
        logger.info(f"idempotency.{result}")
