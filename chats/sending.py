"""The send pipeline: every send, from the JSON API or the console's form, goes the same way.

In front of the send views (``chats/urls.py``, ``chats/console_urls.py``):

1. **the send gate** (``chats.send_gate.send_gated``) — at most ``SOFIIA_SENDS_ACTIVE_MAX``
   sends per worker run their own steps at once;
2. **idempotency** (``chats.middleware.IdempotencyMiddleware``) — the operator (one lazy
   lookup), the text validated once, the key checked and claimed: a delivered key is
   replayed, a key in flight is 409, a key with another text is 422.

Then :func:`send_pipeline`, called by both views through :func:`send_for_request`:

3. **ownership** — another operator's chat, or none, is 404 and spends nothing;
4. **the database's exactly-once guard** — a key whose message was delivered is replayed even
   when the cache has forgotten it, a key whose message is still being delivered is 409, a
   key with another text 422, all without spending quota;
5. **an archived chat** takes no sends (409 ``chat_archived``), and spends nothing;
6. **rate limit** (``ratelimit``) — over a limit is 429 with a ``ratelimit.block`` audit event;
7. **delivery** (``chats.services.message_send``) — the node call, during which the send gives
   its place in the gate up, and the ``message.send`` audit event.

The outcome is typed (``chats.services.SendOutcome``); every refusal is an
``ApplicationError`` with its contract code, raised, carrying the rate-limit headers, and
rendered by the surface.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User

from chats.errors import ChatArchived
from chats.idempotency import REPLAYED_HEADER
from chats.limits import refuse_over_limit
from chats.middleware import idempotent_send_of
from chats.selectors import chat_get_for_operator
from chats.services import SendOutcome, message_replay_record, message_send, message_send_stored
from operators.auth import authenticated_operator
from ratelimit.services import Decision, ratelimit_headers, ratelimit_hit, ratelimit_peek
from sofiia.lib.errors import ApplicationError


@dataclass(frozen=True)
class SendRequest:
    """A send the idempotency middleware has checked: its text is valid and its key well formed."""

    operator: User
    chat_id: int
    text: str
    idempotency_key: str


def send_for_request(request: Any, chat_id: int) -> SendOutcome:
    """Run the pipeline on the send the idempotency middleware read for ``request``, and
    report what came of it back to the middleware (it records the outcome on the way out)."""
    send = idempotent_send_of(request)
    operator = authenticated_operator(request)
    try:
        outcome = send_pipeline(
            SendRequest(operator=operator, chat_id=chat_id, text=send.text, idempotency_key=send.key)
        )
    except ApplicationError as refusal:
        send.refusal = refusal
        raise
    send.outcome = outcome
    return outcome


def send_pipeline(request: SendRequest) -> SendOutcome:
    """Send ``request.text`` to the chat's agent, exactly once per idempotency key."""
    operator, chat_id = request.operator, request.chat_id
    decision: Decision | None = None
    try:
        outcome, decision = _deliver_once(request)
    except ApplicationError as refusal:
        refusal.headers.update(send_limit_headers(operator=operator, chat_id=chat_id, decision=decision))
        raise
    outcome.headers.update(send_limit_headers(operator=operator, chat_id=chat_id, decision=decision))
    if outcome.replayed:
        outcome.headers[REPLAYED_HEADER] = "true"
    return outcome


def _deliver_once(request: SendRequest) -> tuple[SendOutcome, Decision | None]:
    operator, text, key = request.operator, request.text, request.idempotency_key
    chat = chat_get_for_operator(operator=operator, chat_id=request.chat_id)
    stored = message_send_stored(operator=operator, chat=chat, text=text, idempotency_key=key)
    if stored is not None:
        message_replay_record(operator=operator, message=stored.operator_message, key=key, source="database")
        return stored, None
    if chat.archived_at is not None:
        raise ChatArchived("This chat is archived: restore it to send to it.")
    decision = ratelimit_hit(operator=operator, chat_id=chat.pk)
    refuse_over_limit(decision, operator=operator, chat=chat)
    outcome = message_send(operator=operator, chat=chat, text=text, idempotency_key=key)
    if outcome.replayed:
        # Another send with this key delivered it while this one was on its way.
        message_replay_record(operator=operator, message=outcome.operator_message, key=key, source="database")
    return outcome, decision


def send_limit_headers(*, operator: User, chat_id: int, decision: Decision | None = None) -> dict[str, str]:
    """Every send answer carries the operator's quota: as this send left it, or as it stands."""
    if decision is None:
        decision = ratelimit_peek(operator=operator, chat_id=chat_id)
    return ratelimit_headers(decision)
