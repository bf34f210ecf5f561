"""``manage.py audit_prompt MESSAGE_ID``: rebuild what a node was asked for an operator message
and prove it against the audit trail."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.actions import AuditAction, AuditOutcome
from audit.models import AuditEvent
from chats.conversation import ContextUnavailable, infer_body, infer_body_digest
from chats.models import Message


class Command(BaseCommand):
    help = (
        "Rebuild the infer body of an operator message from the stored messages and the message's "
        "infer request, print it as JSON, and check its SHA-256 against the infer_sha256 of the "
        "message's message.send audit events. Exit 0 and 'verified' when they match; non-zero otherwise."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("message_id", type=int, help="The id of an operator message that was sent.")

    def handle(self, *args: Any, **options: Any) -> None:
        message_id: int = options["message_id"]
        message = Message.objects.filter(pk=message_id).first()
        if message is None:
            raise CommandError(f"message {message_id} does not exist")
        if message.role != Message.Role.OPERATOR:
            raise CommandError(
                f"message {message_id} is an {message.role} message: give the operator message it answers"
                + (f" ({message.reply_to_id})" if message.reply_to_id else "")
            )
        if not isinstance(message.infer_request, dict):
            raise CommandError(f"message {message_id} has no stored infer request: it was never sent with one")
        try:
            body = infer_body(message=message, snapshot=message.infer_request)
        except ContextUnavailable as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps(body, ensure_ascii=False, indent=2))
        digest = infer_body_digest(body)

        events = list(
            AuditEvent.objects.filter(
                action=AuditAction.MESSAGE_SEND, target_type="message", target_id=str(message_id)
            ).order_by("ts", "id")
        )
        proofs = [event for event in events if isinstance(event.details, dict) and "infer_sha256" in event.details]
        if not any(event.outcome == AuditOutcome.DELIVERED for event in proofs):
            raise CommandError(
                f"message {message_id}: no delivered message.send audit event carries an infer_sha256 "
                f"({len(events)} message.send event(s) found)"
            )
        mismatched = [event for event in proofs if event.details["infer_sha256"] != digest]
        if mismatched:
            raise CommandError(
                f"message {message_id}: MISMATCH — the rebuilt body's sha256 is {digest}, but audit event(s) "
                + ", ".join(
                    f"#{event.id} ({event.outcome}) recorded {event.details['infer_sha256']}" for event in mismatched
                )
                + "; a stored message or the infer request was changed after the send"
            )
        self.stdout.write(
            f"verified: message {message_id}, sha256 {digest}, "
            f"{len(proofs)} audit event(s) ({', '.join(f'#{event.id}' for event in proofs)})"
        )
