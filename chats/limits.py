"""Acting on the rate limiter's decisions: the refusal an operator gets, and its audit event."""

from __future__ import annotations

from django.contrib.auth.models import User

from audit.actions import AuditAction, AuditOutcome
from audit.services import audit_record_budgeted
from chats.errors import RateLimited, RateLimitUnavailable
from chats.models import Chat
from ratelimit.services import Decision, ratelimit_block_details, ratelimit_headers

BACKEND_RETRY_AFTER_SECONDS = 5


def refuse_over_limit(decision: Decision, *, operator: User, chat: Chat | None = None, what: str | None = None) -> None:
    """Raise the contract's refusal for a decision that does not allow the action: 429
    ``rate_limited`` with the blocked scope (and a ``ratelimit.block`` audit event, budgeted
    per operator), or 503 ``rate_limit_unavailable`` when limits cannot be checked and they
    fail closed. ``what`` names the refused actions in the detail (sends, new chats by default)."""
    if decision.allowed:
        return
    if decision.backend_failed:
        raise RateLimitUnavailable(
            "Rate limits cannot be checked right now; retry shortly.",
            headers={"Retry-After": str(BACKEND_RETRY_AFTER_SECONDS), **ratelimit_headers(decision)},
        )
    audit_record_budgeted(
        budget_key=f"operator:{operator.pk}",
        actor=operator.get_username(),
        action=AuditAction.RATELIMIT_BLOCK,
        outcome=AuditOutcome.BLOCKED,
        target_type="chat" if chat is not None else "operator",
        target_id=chat.pk if chat is not None else operator.pk,
        chat_id=chat.pk if chat is not None else None,
        details=ratelimit_block_details(decision),
    )
    raise RateLimited(
        f"Too many {what or ('sends' if chat is not None else 'new chats')} for this {decision.blocked_scope}; "
        f"retry in {decision.retry_after} s.",
        headers={"Retry-After": str(decision.retry_after), **ratelimit_headers(decision)},
        extra={"scope": decision.blocked_scope, "retry_after": decision.retry_after},
    )
