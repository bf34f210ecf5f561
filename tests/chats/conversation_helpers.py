"""Chats and messages stored directly, for the tests of what a node is asked: the send path
stores them the same way (an operator message, then its reply)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from audit.actions import AuditAction, AuditOutcome
from audit.services import audit_record
from chats.conversation import infer_body, infer_body_digest, infer_request_snapshot
from chats.models import Chat, Message

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def operator_message(chat: Chat, text: str, *, ts: datetime, status: str = Message.Status.DELIVERED) -> Message:
    return Message.objects.create(
        chat=chat, role=Message.Role.OPERATOR, text=text, ts=ts, node=chat.node, status=status,
        operator=chat.owner, idempotency_key=uuid.uuid4().hex, attempts=1,
        failure="node_unavailable" if status == Message.Status.FAILED else "",
    )  # fmt: skip


def exchange(chat: Chat, text: str, answer: str, *, ts: datetime) -> tuple[Message, Message]:
    """A delivered operator message and its reply a second later."""
    question = operator_message(chat, text, ts=ts)
    reply = Message.objects.create(
        chat=chat, role=Message.Role.AGENT, text=answer, ts=ts + timedelta(seconds=1), node=chat.node,
        status=Message.Status.DELIVERED, reply_to=question, model="m-1", backend="vllm", tokens_used=7, latency_ms=12,
    )  # fmt: skip
    return question, reply


def record_send(chat: Chat, message: Message, *, outcome: str = AuditOutcome.DELIVERED) -> str:
    """What the send path does for a delivery: keep the snapshot, and put the digest of the body
    it sent into the message.send audit event. Returns the digest."""
    if message.infer_request is None:
        message.infer_request = infer_request_snapshot(chat=chat, message=message)
        message.save(update_fields=["infer_request"])
    body = infer_body(message=message, snapshot=message.infer_request)
    digest = infer_body_digest(body)
    audit_record(
        actor=chat.owner.get_username(),
        action=AuditAction.MESSAGE_SEND,
        outcome=AuditOutcome(outcome),
        target_type="message",
        target_id=message.pk,
        chat_id=chat.pk,
        details={
            "node": chat.node,
            "agent": chat.agent,
            "infer_sha256": digest,
            "context_ids": [message_id for pair in message.infer_request["context"] for message_id in pair],
        },
    )
    return digest
