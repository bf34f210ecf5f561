from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.services import audit_record
from chats.bulkhead import node_bulkhead
from chats.errors import (
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    MessageDeliveryFailed,
    OperatorExists,
    UnknownNode,
)
from chats.infer import NodeError, infer
from chats.metrics import SEND_DURATION
from chats.models import Chat, Message
from chats.nodes import default_node, node_exists
from sofiia.lib.db import db_connections_release

logger = logging.getLogger(__name__)

IN_FLIGHT_RETRY_AFTER_SECONDS = 1


@dataclass(frozen=True)
class SendResult:
    operator_message: Message
    reply: Message
    # True when the key had already delivered this message: nothing was sent again.
    replayed: bool


def delivery_lease_seconds() -> float:
    """How long a delivery may stay in flight before another attempt may take it over.

    A worker that dies mid-call leaves its message ``pending``; after the infer timeout
    plus a margin for the database writes around the call, the attempt is certainly over.
    """
    return float(settings.SOFIIA_INFER_TIMEOUT) + 15.0


def chat_create(*, operator: User, title: str, agent: str, node: str | None = None) -> Chat:
    node = node or default_node()
    if not node_exists(node):
        raise UnknownNode(f"Node {node!r} is not configured; known nodes: {', '.join(settings.SOFIIA_NODES)}.")
    with transaction.atomic():
        chat = Chat.objects.create(owner=operator, title=title, agent=agent, node=node)
        audit_record(
            actor=operator.get_username(),
            action="chat.create",
            target_type="chat",
            target_id=chat.pk,
            chat_id=chat.pk,
            details={"title": title, "agent": agent, "node": node},
        )
    logger.info(
        "chat.create",
        extra={"operator": operator.get_username(), "chat_id": chat.pk, "node": node, "agent": agent},
    )
    return chat


def _operator_message_claim(*, operator: User, chat: Chat, text: str, idempotency_key: str) -> tuple[Message, bool]:
    """Store the operator message as ``pending``, or find the one this key already stored.

    Returns the message and whether it was already delivered. A ``failed`` message, or a
    ``pending`` one whose lease ran out, is taken over for another delivery attempt by a
    conditional UPDATE, so only one worker wins it even when the idempotency cache is
    gone. The unique constraint on (chat, operator, key) makes a second message impossible.
    """
    now = timezone.now()
    try:
        with transaction.atomic():
            message = Message.objects.create(
                chat=chat,
                role=Message.Role.OPERATOR,
                text=text,
                ts=now,
                node=chat.node,
                status=Message.Status.PENDING,
                operator=operator,
                idempotency_key=idempotency_key,
                attempts=1,
                delivery_started_at=now,
            )
        return message, False
    except IntegrityError:
        existing = Message.objects.filter(
            chat=chat, operator=operator, idempotency_key=idempotency_key, role=Message.Role.OPERATOR
        ).first()
        if existing is None:
            raise
    if existing.text != text:
        raise IdempotencyKeyReused("This Idempotency-Key was already used with a different body.")
    if existing.status == Message.Status.DELIVERED:
        return existing, True
    lease_expired = now - timedelta(seconds=delivery_lease_seconds())
    taken = (
        Message.objects.filter(pk=existing.pk)
        .filter(
            Q(status=Message.Status.FAILED) | Q(status=Message.Status.PENDING, delivery_started_at__lt=lease_expired)
        )
        .update(status=Message.Status.PENDING, attempts=F("attempts") + 1, delivery_started_at=now, failure="")
    )
    existing.refresh_from_db()
    if taken:
        return existing, False
    if existing.status == Message.Status.DELIVERED:
        return existing, True
    raise IdempotencyKeyInFlight(
        "A request with this Idempotency-Key is still being processed.",
        headers={"Retry-After": str(IN_FLIGHT_RETRY_AFTER_SECONDS)},
    )


def _send_log(*, operator: User, chat: Chat, message: Message, status: str, started: float, **extra: object) -> None:
    duration = time.monotonic() - started
    SEND_DURATION.labels(outcome=status).observe(duration)
    logger.info(
        "message.send",
        extra={
            "operator": operator.get_username(),
            "chat_id": chat.pk,
            "node": chat.node,
            "status": status,
            "duration_ms": round(duration * 1000, 1),
            "message_id": message.pk,
            "attempt": message.attempts,
            **extra,
        },
    )


def message_send(*, operator: User, chat: Chat, text: str, idempotency_key: str) -> SendResult:
    """Relay ``text`` to the chat's node and store both sides.

    The operator message is committed as ``pending`` before the node is called; no
    transaction and no database connection is held across the call, which takes one of
    the node's in-flight slots (``node_busy`` when there is none). On success the reply is stored and the
    message marked ``delivered``; on a node failure it is marked ``failed`` and
    :class:`MessageDeliveryFailed` is raised. Sending again with the same key re-attempts
    delivery of that same message, or returns the stored result if it was delivered.
    """
    started = time.monotonic()
    actor = operator.get_username()
    message, delivered = _operator_message_claim(
        operator=operator, chat=chat, text=text, idempotency_key=idempotency_key
    )
    if delivered:
        reply = Message.objects.get(reply_to=message)
        audit_record(
            actor=actor,
            action="message.replay",
            target_type="message",
            target_id=message.pk,
            chat_id=chat.pk,
            details={"source": "database", "idempotency_key": idempotency_key},
        )
        _send_log(operator=operator, chat=chat, message=message, status="replayed", started=started)
        return SendResult(operator_message=message, reply=reply, replayed=True)

    audit_details = {
        "node": chat.node,
        "agent": chat.agent,
        "attempt": message.attempts,
        "idempotency_key": idempotency_key,
    }
    db_connections_release()
    try:
        with node_bulkhead().slot(chat.node):
            result = infer(node=chat.node, agent=chat.agent, prompt=text)
    except NodeError as error:
        outcome = "timeout" if error.code == "node_timeout" else "failed"
        with transaction.atomic():
            Message.objects.filter(pk=message.pk, status=Message.Status.PENDING, attempts=message.attempts).update(
                status=Message.Status.FAILED, failure=error.code
            )
            audit_record(
                actor=actor,
                action="message.send",
                outcome=outcome,
                target_type="message",
                target_id=message.pk,
                chat_id=chat.pk,
                details={**audit_details, "error": error.code, "reason": error.kind},
            )
        message.refresh_from_db()
        _send_log(operator=operator, chat=chat, message=message, status=outcome, started=started, error=error.kind)
        raise MessageDeliveryFailed(message, error) from None

    try:
        with transaction.atomic():
            reply = Message.objects.create(
                chat=chat,
                role=Message.Role.AGENT,
                text=result.response,
                ts=timezone.now(),
                node=chat.node,
                status=Message.Status.DELIVERED,
                reply_to=message,
            )
            Message.objects.filter(pk=message.pk).update(status=Message.Status.DELIVERED, failure="")
            audit_record(
                actor=actor,
                action="message.send",
                outcome="delivered",
                target_type="message",
                target_id=message.pk,
                chat_id=chat.pk,
                details={**audit_details, "reply_id": reply.pk, "model": result.model, "backend": result.backend},
            )
    except IntegrityError:
        # An attempt that took over after our lease ran out stored its reply first.
        reply = Message.objects.get(reply_to=message)
    message.status, message.failure = Message.Status.DELIVERED, ""
    _send_log(operator=operator, chat=chat, message=message, status="delivered", started=started)
    return SendResult(operator_message=message, reply=reply, replayed=False)


@dataclass(frozen=True)
class OperatorCreated:
    operator: User
    created: bool
    token: str | None


def operator_create(
    *, username: str, password: str | None = None, with_token: bool = False, exist_ok: bool = False
) -> OperatorCreated:
    """Create an operator (a Django user), optionally with an API token.

    With ``exist_ok`` an existing operator is kept as is (a given password is set again)
    and its current token returned, so a setup script can run any number of times.
    """
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    user_model = get_user_model()
    with transaction.atomic():
        operator, created = user_model.objects.get_or_create(username=username)
        if not created and not exist_ok:
            raise OperatorExists(f"Operator {username!r} already exists.")
        if password is not None:
            operator.set_password(password)
        elif created:
            operator.set_unusable_password()
        operator.save()
        token = Token.objects.get_or_create(user=operator)[0].key if with_token else None
        if created:
            audit_record(
                actor="system",
                action="operator.create",
                target_type="user",
                target_id=operator.pk,
                details={"username": username, "token": with_token, "password": password is not None},
            )
    return OperatorCreated(operator=operator, created=created, token=token)
