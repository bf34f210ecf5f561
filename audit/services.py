from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.db import transaction

from audit.metrics import AUDIT_EVENTS, AUDIT_WRITE_FAILURES
from audit.models import AuditEvent
from sofiia.lib.request_id import current_request

logger = logging.getLogger(__name__)


def audit_record(
    *,
    actor: str,
    action: str,
    outcome: str = "success",
    target_type: str = "",
    target_id: str | int | None = None,
    chat_id: int | None = None,
    details: Mapping[str, Any] | None = None,
) -> AuditEvent | None:
    """Write one audit event; the request id, client address and user agent come from the
    current request, if any.

    Never raises: a failure to audit must not break the action being audited. It is
    logged and counted (``sofiia_audit_write_failures_total``) instead, and the event is
    written in a savepoint so the caller's transaction survives it.
    """
    context = current_request()
    try:
        with transaction.atomic():
            event = AuditEvent.objects.create(
                actor=actor[:150],
                action=action,
                outcome=outcome,
                target_type=target_type,
                target_id="" if target_id is None else str(target_id),
                chat_id=chat_id,
                request_id=context.request_id if context else "",
                ip=context.ip if context else None,
                user_agent=context.user_agent if context else "",
                details=dict(details or {}),
            )
    except Exception:
        AUDIT_WRITE_FAILURES.labels(action=action).inc()
        logger.exception("audit.write_failed", extra={"action": action, "actor": actor, "chat_id": chat_id})
        return None
    AUDIT_EVENTS.labels(action=action).inc()
    return event
