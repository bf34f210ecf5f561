"""Send rate limits per chat (``SOFIIA_RATE_LIMIT_CHAT``) and per operator
(``SOFIIA_RATE_LIMIT_OPERATOR``); see ``sofiia.lib.sliding_window`` for the algorithm.

The limiter decides and counts; the caller acts on the decision (answers 429, writes the
``ratelimit.block`` audit event)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import User

from ratelimit.metrics import RATELIMIT_REQUESTS
from sofiia.lib.limits import limiter_acquire
from sofiia.lib.sliding_window import Outcome, Window

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    """The answer for one send. ``outcome`` is ``None`` when the backend failed (fail-open)."""

    allowed: bool
    windows: tuple[Window, ...]
    outcome: Outcome | None
    blocked_scope: str | None = None
    retry_after: int = 0
    backend_failed: bool = False


def chat_create_windows(*, operator_id: int) -> tuple[Window, ...]:
    policy = settings.SOFIIA_RATE_LIMIT_CHAT_CREATE
    return (Window("chat_create", f"chat-create:op:{operator_id}", policy.limit, policy.window),)


def chat_change_windows(*, operator_id: int) -> tuple[Window, ...]:
    policy = settings.SOFIIA_RATE_LIMIT_CHAT_CHANGE
    return (Window("chat_change", f"chat-change:op:{operator_id}", policy.limit, policy.window),)


def send_windows(*, operator_id: int, chat_id: int) -> tuple[Window, ...]:
    # The chat scope is keyed by operator too: chats have one owner, so nothing changes for
    # them, but nobody can spend the quota of someone else's chat by sending to its id.
    chat, operator = settings.SOFIIA_RATE_LIMIT_CHAT, settings.SOFIIA_RATE_LIMIT_OPERATOR
    return (
        Window("chat", f"chat:{chat_id}:op:{operator_id}", chat.limit, chat.window),
        Window("operator", f"op:{operator_id}", operator.limit, operator.window),
    )


def _acquire(windows: tuple[Window, ...], *, consume: bool) -> Decision:
    outcome = limiter_acquire(windows, consume=consume)
    if outcome is None:
        allowed = bool(settings.SOFIIA_RATE_LIMIT_FAIL_OPEN)
        return Decision(allowed=allowed, windows=windows, outcome=None, backend_failed=True)
    if outcome.allowed:
        return Decision(allowed=True, windows=windows, outcome=outcome)
    assert outcome.blocked_scope is not None
    retry_after = max(1, math.ceil(outcome.state(outcome.blocked_scope).reset_after))
    return Decision(
        allowed=False, windows=windows, outcome=outcome, blocked_scope=outcome.blocked_scope, retry_after=retry_after
    )


def ratelimit_hit(*, operator: User, chat_id: int) -> Decision:
    """Spend one send of the operator's quota and of the chat's, or refuse without spending.

    A refusal is counted and logged; :func:`ratelimit_block_details` describes it for
    the caller's audit event.
    """
    return _hit(send_windows(operator_id=operator.pk, chat_id=chat_id), operator=operator, chat_id=chat_id)


def ratelimit_chat_create_hit(*, operator: User) -> Decision:
    """Spend one of the operator's chat creations (``SOFIIA_RATE_LIMIT_CHAT_CREATE``)."""
    return _hit(chat_create_windows(operator_id=operator.pk), operator=operator, chat_id=None)


def ratelimit_chat_change_hit(*, operator: User, chat_id: int) -> Decision:
    """Spend one of the operator's chat changes (``SOFIIA_RATE_LIMIT_CHAT_CHANGE``): renames,
    archiving and settings, on every chat of theirs together."""
    return _hit(chat_change_windows(operator_id=operator.pk), operator=operator, chat_id=chat_id)


def _hit(windows: tuple[Window, ...], *, operator: User, chat_id: int | None) -> Decision:
    decision = _acquire(windows, consume=True)
    if decision.backend_failed:
        return decision
    if decision.allowed:
        for window in windows:
            RATELIMIT_REQUESTS.labels(scope=window.scope, decision="allowed").inc()
        return decision
    RATELIMIT_REQUESTS.labels(scope=decision.blocked_scope, decision="blocked").inc()
    logger.warning(
        "ratelimit.block",
        extra={"operator": operator.get_username(), "chat_id": chat_id, **ratelimit_block_details(decision)},
    )
    return decision


def ratelimit_block_details(decision: Decision) -> dict[str, object]:
    """What a refusal was about: the scope, its policy and when to retry."""
    window = next(w for w in decision.windows if w.scope == decision.blocked_scope)
    return {"scope": window.scope, "limit": window.limit, "window": window.seconds, "retry_after": decision.retry_after}


def ratelimit_peek(*, operator: User, chat_id: int) -> Decision:
    """The current quota without spending any (for answers that are not counted, like replays)."""
    return _acquire(send_windows(operator_id=operator.pk, chat_id=chat_id), consume=False)


def ratelimit_headers(decision: Decision) -> dict[str, str]:
    """IETF ``RateLimit-Policy`` and ``RateLimit`` headers (structured-field lists, one item per scope).

    ``r`` is the remaining quota; ``t`` the seconds until the oldest counted send leaves the
    window, i.e. until one more send is possible when ``r`` is 0.
    """
    headers = {"RateLimit-Policy": ", ".join(f'"{w.scope}";q={w.limit};w={w.seconds}' for w in decision.windows)}
    if decision.outcome is not None:
        headers["RateLimit"] = ", ".join(
            f'"{s.scope}";r={s.remaining};t={math.ceil(s.reset_after)}' for s in decision.outcome.states
        )
    return headers
