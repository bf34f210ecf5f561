from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import F, Q

from audit.actions import AuditAction, AuditOutcome
from audit.services import AuditUnavailable, audit_record, audit_record_budgeted
from chats.conversation import infer_body, infer_body_digest, infer_request_snapshot
from chats.errors import MessageDeliveryFailed, UnknownNode
from chats.export import Export, export_render
from chats.idempotency import delivery_lease_seconds, in_flight_error, request_fingerprint, reused_error
from chats.limits import refuse_over_limit
from chats.markdown import reply_html
from chats.metrics import SEND_DURATION
from chats.models import Chat, Message
from chats.search import search_fold
from chats.selectors import LAST_ACTIVITY_RESOLUTION
from chats.send_gate import send_gate_given_up
from nodes.bulkhead import node_bulkhead
from nodes.infer import NodeError, infer
from nodes.registry import default_node, node_exists
from ratelimit.services import ratelimit_chat_change_hit, ratelimit_chat_create_hit
from sofiia.lib.clock import clock_now
from sofiia.lib.db import db_commit_guard, db_connections_release, db_finish_later, db_retry
from sofiia.lib.errors import database_unavailable, is_database_outage

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class SendOutcome:
    """What a send with a key came to: its message and the reply."""

    operator_message: Message
    reply: Message
    # True when the key had already delivered this message: nothing was sent again.
    replayed: bool
    # The answer's headers: the rate-limit state, the replay mark (chats.sending).
    headers: dict[str, str] = field(default_factory=dict)


# What PATCH /api/chats/{id} (and the console) may change; ``archived`` stands for
# ``archived_at`` (set to now, or cleared).
CHAT_CHANGEABLE_FIELDS = ("title", "archived", "system_prompt", "model", "temperature", "max_tokens", "context_turns")
CHAT_SETTINGS_FIELDS = ("system_prompt", "model", "temperature", "max_tokens", "context_turns")


def chat_create(*, operator: User, title: str, agent: str, node: str | None = None, **chat_settings: Any) -> Chat:
    """A new chat of ``operator`` with ``agent`` on ``node`` (the default node if none), within
    the operator's chat-creation quota (``SOFIIA_RATE_LIMIT_CHAT_CREATE``). ``chat_settings``
    are any of :data:`CHAT_SETTINGS_FIELDS`, already validated; the rest take their defaults."""
    unknown = set(chat_settings) - set(CHAT_SETTINGS_FIELDS)
    if unknown:
        raise TypeError(f"chat_create() got unknown settings: {', '.join(sorted(unknown))}")
    node = node or default_node()
    if not node_exists(node):
        raise UnknownNode(f"Node {node!r} is not configured; known nodes: {', '.join(settings.SOFIIA_NODES)}.")
    refuse_over_limit(ratelimit_chat_create_hit(operator=operator), operator=operator)
    with transaction.atomic():
        chat = Chat.objects.create(owner=operator, title=title, agent=agent, node=node, **chat_settings)
        audit_record(
            actor=operator.get_username(),
            action=AuditAction.CHAT_CREATE,
            target_type="chat",
            target_id=chat.pk,
            chat_id=chat.pk,
            details={"title": title, "agent": agent, "node": node, **chat_settings},
        )
    logger.info(
        "chat.create",
        extra={"operator": operator.get_username(), "chat_id": chat.pk, "node": node, "agent": agent},
    )
    return chat


def _chat_value(chat: Chat, field: str) -> Any:
    if field == "archived":
        return chat.archived_at is not None
    return getattr(chat, field)


def _chat_diff(chat: Chat, changes: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        field: {"old": _chat_value(chat, field), "new": value}
        for field, value in changes.items()
        if _chat_value(chat, field) != value
    }


def chat_change(*, operator: User, chat: Chat, changes: Mapping[str, Any]) -> Chat:
    """Change any of :data:`CHAT_CHANGEABLE_FIELDS` of the operator's ``chat`` (values
    already validated), within the operator's chat-change quota
    (``SOFIIA_RATE_LIMIT_CHAT_CHANGE``).

    One ``chat.change`` audit event, in the change's transaction, carries the old and new
    value of each field that changed (``{"changes": {field: {"old", "new"}}}``). Values equal
    to the stored ones change nothing: no quota is spent and no event is written. The row is
    locked and read again inside the transaction, so the old values recorded are the ones
    replaced even when two changes race. Returns ``chat`` with the stored values.
    """
    unknown = set(changes) - set(CHAT_CHANGEABLE_FIELDS)
    if unknown:
        raise TypeError(f"chat_change() got unknown fields: {', '.join(sorted(unknown))}")
    if not _chat_diff(chat, changes):
        return chat
    refuse_over_limit(
        ratelimit_chat_change_hit(operator=operator, chat_id=chat.pk), operator=operator, what="chat changes"
    )
    with transaction.atomic():
        current = Chat.objects.select_for_update().get(pk=chat.pk)
        diff = _chat_diff(current, changes)
        if diff:
            values = {field: change["new"] for field, change in diff.items() if field != "archived"}
            if "archived" in diff:
                values["archived_at"] = clock_now() if diff["archived"]["new"] else None
            if "title" in diff:
                # update() bypasses Chat.save(), which keeps the search copy otherwise.
                values["title_search"] = search_fold(values["title"])
            Chat.objects.filter(pk=chat.pk).update(**values)
            audit_record(
                actor=operator.get_username(),
                action=AuditAction.CHAT_CHANGE,
                target_type="chat",
                target_id=chat.pk,
                chat_id=chat.pk,
                details={"changes": diff},
            )
            for field, value in values.items():
                setattr(current, field, value)
    for field in (*CHAT_SETTINGS_FIELDS, "title", "title_search", "archived_at"):
        setattr(chat, field, getattr(current, field))
    if diff:
        logger.info(
            "chat.change", extra={"operator": operator.get_username(), "chat_id": chat.pk, "fields": sorted(diff)}
        )
    return chat


def chat_rename(*, operator: User, chat: Chat, title: str) -> Chat:
    """Give the chat a new title (1..200 characters, checked by the caller's form): a
    :func:`chat_change` of its title."""
    return chat_change(operator=operator, chat=chat, changes={"title": title})


def chat_archive(*, operator: User, chat: Chat, archived: bool) -> Chat:
    """Take the chat off the console's list (``archived``) or put it back; its messages stay.
    A :func:`chat_change` of ``archived``."""
    return chat_change(operator=operator, chat=chat, changes={"archived": archived})


def chat_export(*, operator: User, chat: Chat, fmt: str) -> Export:
    """The operator's ``chat`` with every message, in ``fmt`` (``json`` or ``md``), to stream
    out; the ``chat.export`` audit event is written before the first byte is."""
    export = export_render(chat=chat, fmt=fmt)
    audit_record(
        actor=operator.get_username(),
        action=AuditAction.CHAT_EXPORT,
        target_type="chat",
        target_id=chat.pk,
        chat_id=chat.pk,
        details={"format": fmt},
    )
    logger.info("chat.export", extra={"operator": operator.get_username(), "chat_id": chat.pk, "format": fmt})
    return export


def chat_mark_read(*, chat: Chat, upto: datetime) -> bool:
    """Record that the chat's owner has seen its messages up to ``upto``; a mark never moves
    back (an older page's mark arriving late changes nothing). Returns whether it moved.

    Not an audit event: it is where the operator's screen stands, as a scroll position is,
    not an action on the chat."""
    moved = Chat.objects.filter(Q(last_read_at__isnull=True) | Q(last_read_at__lt=upto), pk=chat.pk).update(
        last_read_at=upto
    )
    if moved:
        chat.last_read_at = upto
    return bool(moved)


def _chat_touch(*, chat: Chat, now: datetime) -> None:
    """Move the chat's last activity to ``now``, outside the message's transaction."""
    threshold = now - LAST_ACTIVITY_RESOLUTION
    # The chat was read by this send a moment ago: when it was active within the resolution
    # then, the UPDATE would match nothing, so it is not sent at all.
    if chat.last_activity_at >= threshold:
        return
    if Chat.objects.filter(pk=chat.pk, last_activity_at__lt=threshold).update(last_activity_at=now):
        chat.last_activity_at = now


def _operator_message_claim(*, operator: User, chat: Chat, text: str, idempotency_key: str) -> tuple[Message, bool]:
    """Store the operator message as ``pending``, or find the one this key already stored.

    Returns the message and whether it was already delivered. A ``failed`` message, or a
    ``pending`` one whose lease ran out, is taken over for another delivery attempt by a
    conditional UPDATE, so only one worker wins it even when the idempotency cache is
    gone. The unique constraint on (chat, operator, key) makes a second message impossible.
    """
    now = clock_now()
    try:
        return _operator_message_take(operator=operator, chat=chat, text=text, idempotency_key=idempotency_key, now=now)
    except Exception as exc:
        if not is_database_outage(exc):
            raise
        # The write may have committed with its answer lost: whatever this attempt left
        # pending is marked failed once the database is back, so a retry with the key can
        # take it over at once instead of waiting out the lease.
        _finish_later(
            lambda: Message.objects.filter(
                chat=chat,
                operator=operator,
                idempotency_key=idempotency_key,
                role=Message.Role.OPERATOR,
                status=Message.Status.PENDING,
                delivery_started_at=now,
            ).update(status=Message.Status.FAILED, failure="database_unavailable"),
            what="message.release",
        )
        raise


def _operator_message_take(
    *, operator: User, chat: Chat, text: str, idempotency_key: str, now: datetime
) -> tuple[Message, bool]:
    # What this message asks besides its text is fixed now, at its first attempt, and kept
    # with it: a retry asks the same, and an auditor can rebuild the request (audit_prompt).
    snapshot = infer_request_snapshot(chat=chat, message=Message(chat=chat, ts=now))
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
                infer_request=snapshot,
            )
        _chat_touch(chat=chat, now=now)
        return message, False
    except IntegrityError:
        existing = Message.objects.filter(
            chat=chat, operator=operator, idempotency_key=idempotency_key, role=Message.Role.OPERATOR
        ).first()
        if existing is None:
            raise
    if request_fingerprint(existing.text) != request_fingerprint(text):
        raise reused_error()
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
    raise in_flight_error()


def message_send_stored(*, operator: User, chat: Chat, text: str, idempotency_key: str) -> SendOutcome | None:
    """The stored result of a delivered send with this key, to replay without sending again;
    ``None`` when the key has delivered nothing yet (or is new), or failed and may be retried.

    A key whose message another attempt is still delivering is 409 here, before the send
    spends any quota: a client retrying a send in flight (after a worker died, say) spends
    nothing until the message can be delivered again.
    """
    # Every fresh send asks this, so the common answer (no such key) is one indexed lookup of
    # a few columns; the messages themselves are loaded only for a replay.
    found = (
        Message.objects.filter(
            chat=chat, operator=operator, idempotency_key=idempotency_key, role=Message.Role.OPERATOR
        )
        .values_list("pk", "status", "text", "delivery_started_at")
        .first()
    )
    if found is None:
        return None
    pk, status, stored_text, started_at = found
    if request_fingerprint(stored_text) != request_fingerprint(text):
        raise reused_error()
    lease_start = clock_now() - timedelta(seconds=delivery_lease_seconds())
    if status == Message.Status.PENDING and started_at is not None and started_at > lease_start:
        raise in_flight_error()
    if status != Message.Status.DELIVERED:
        return None
    existing = Message.objects.select_related("reply").get(pk=pk)
    return SendOutcome(operator_message=existing, reply=existing.reply, replayed=True)


def message_replay_record(*, operator: User, message: Message, key: str, source: str) -> None:
    """Note a replay of ``message`` (from the idempotency ``cache`` or the ``database``):
    counted in the audit trail within the operator's budget, as refusals are."""
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


def _finish_later(operation: Callable[[], object], *, what: str) -> None:
    # Until the lease runs out: after that, another attempt may own the message.
    db_finish_later(operation, seconds=delivery_lease_seconds(), what=what, transient=_ends_an_attempt_later)


def _ends_an_attempt_later(exc: BaseException) -> bool:
    """A write that ends a delivery attempt waits out what may pass: the database away, or
    its audit event not written (the write is refused whole, and tried again)."""
    return is_database_outage(exc) or isinstance(exc, AuditUnavailable)


def _write_or_hand_over(operation: Callable[[], T], *, what: str) -> T:
    """Do a write that ends a delivery attempt, riding out a short database outage or audit
    failure (``SOFIIA_DB_RETRY_SECONDS``). If it lasts, the send is answered
    ``503 database_unavailable`` (or ``audit_unavailable``) and the write is handed to the
    background, which completes it when it can: the attempt's outcome is recorded with its
    audit event (a reply kept, a failure released) and a retry with the key gets it without
    waiting out the lease. A node's reply is never thrown away for want of its event."""
    try:
        return db_retry(
            operation, seconds=settings.SOFIIA_DB_RETRY_SECONDS, what=what, transient=_ends_an_attempt_later
        )
    except Exception as exc:
        if not _ends_an_attempt_later(exc):
            raise
        _finish_later(operation, what=what)
        if isinstance(exc, AuditUnavailable):
            raise
        raise database_unavailable() from None


def message_send(*, operator: User, chat: Chat, text: str, idempotency_key: str) -> SendOutcome:
    """Relay ``text`` to the chat's node and store both sides.

    The operator message is committed as ``pending`` before the node is called; no
    transaction, no database connection and no place in the send gate is held across the
    call, which takes one of the node's in-flight slots (``node_busy`` when there is none).
    On success the reply is stored and the message marked ``delivered``; on a node failure
    it is marked ``failed`` and :class:`MessageDeliveryFailed` is raised. Sending again with
    the same key re-attempts delivery of that same message, or returns the stored result if
    it was delivered.
    """
    started = time.monotonic()
    actor = operator.get_username()
    message, delivered = _operator_message_claim(
        operator=operator, chat=chat, text=text, idempotency_key=idempotency_key
    )
    if delivered:
        # Another send with this key delivered it while this one was on its way here.
        return SendOutcome(operator_message=message, reply=Message.objects.get(reply_to=message), replayed=True)

    snapshot = message.infer_request
    if snapshot is None:  # stored before messages kept what they ask
        snapshot = infer_request_snapshot(chat=chat, message=message)
        Message.objects.filter(pk=message.pk).update(infer_request=snapshot)
    body = infer_body(message=message, snapshot=snapshot)
    audit_details = {
        "node": chat.node,
        "agent": chat.agent,
        "attempt": message.attempts,
        "idempotency_key": idempotency_key,
        # The proof of what the agent was asked: audit_prompt rebuilds the body and compares.
        "infer_sha256": infer_body_digest(body),
        "context_ids": [message_id for pair in snapshot.get("context", []) for message_id in pair],
    }
    db_connections_release()
    try:
        with send_gate_given_up(), node_bulkhead().slot(chat.node):
            result = infer(node=chat.node, agent=chat.agent, body=body)
    except NodeError as error:
        outcome = AuditOutcome.TIMEOUT if error.code == "node_timeout" else AuditOutcome.FAILED
        # The closure outlives this block (it may be handed to the background).
        node_error = error

        def mark_failed() -> None:
            with transaction.atomic():
                Message.objects.filter(pk=message.pk, status=Message.Status.PENDING, attempts=message.attempts).update(
                    status=Message.Status.FAILED, failure=node_error.failure
                )
                audit_record(
                    actor=actor,
                    action=AuditAction.MESSAGE_SEND,
                    outcome=outcome,
                    target_type="message",
                    target_id=message.pk,
                    chat_id=chat.pk,
                    details={**audit_details, "error": node_error.code, "reason": node_error.kind},
                )
                db_commit_guard()

        _write_or_hand_over(mark_failed, what="message.failed")
        message.refresh_from_db()
        _send_log(operator=operator, chat=chat, message=message, status=outcome, started=started, error=error.kind)
        raise MessageDeliveryFailed(message, error) from None

    # Rendered once, here, outside the transaction and the write's retries: pages only copy it.
    html = reply_html(result.response)

    def store_reply() -> Message:
        try:
            with transaction.atomic():
                reply = Message.objects.create(
                    chat=chat,
                    role=Message.Role.AGENT,
                    text=result.response,
                    html=html,
                    ts=clock_now(),
                    node=chat.node,
                    status=Message.Status.DELIVERED,
                    reply_to=message,
                    model=result.model,
                    backend=result.backend,
                    tokens_used=result.tokens_used,
                    latency_ms=result.latency_ms,
                )
                Message.objects.filter(pk=message.pk).update(status=Message.Status.DELIVERED, failure="")
                audit_record(
                    actor=actor,
                    action=AuditAction.MESSAGE_SEND,
                    outcome=AuditOutcome.DELIVERED,
                    target_type="message",
                    target_id=message.pk,
                    chat_id=chat.pk,
                    details={**audit_details, "reply_id": reply.pk, "model": result.model, "backend": result.backend},
                )
                db_commit_guard()
        except IntegrityError:
            # An attempt that took over after our lease ran out stored its reply first, or
            # an earlier try of this one committed without its answer reaching us.
            reply = Message.objects.get(reply_to=message)
        return reply

    # The node has answered: its reply is not thrown away because the database blinked.
    reply = _write_or_hand_over(store_reply, what="message.reply")
    message.status, message.failure = Message.Status.DELIVERED, ""
    _send_log(operator=operator, chat=chat, message=message, status="delivered", started=started)
    return SendOutcome(operator_message=message, reply=reply, replayed=False)
