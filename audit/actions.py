"""The audit actions and outcomes this application writes.

The admin offers them as filters. Every name is ``<subject>.<verb>``; an event's outcome says
how the action ended.
"""

from __future__ import annotations

AUTH_LOGIN = "auth.login"
AUTH_LOGIN_FAILED = "auth.login_failed"
AUTH_LOGOUT = "auth.logout"
CHAT_CREATE = "chat.create"
MESSAGE_SEND = "message.send"
MESSAGE_REPLAY = "message.replay"
RATELIMIT_BLOCK = "ratelimit.block"
AUDIT_READ = "audit.read"
AUDIT_PRUNE = "audit.prune"
OPERATOR_CREATE = "operator.create"
OPERATOR_CHANGE = "operator.change"
OPERATOR_DELETE = "operator.delete"
# Action names, not secrets.
TOKEN_CREATE = "token.create"  # noqa: S105
TOKEN_CHANGE = "token.change"  # noqa: S105
TOKEN_DELETE = "token.delete"  # noqa: S105
GROUP_CREATE = "group.create"
GROUP_CHANGE = "group.change"
GROUP_DELETE = "group.delete"

ALL = (
    AUTH_LOGIN,
    AUTH_LOGIN_FAILED,
    AUTH_LOGOUT,
    CHAT_CREATE,
    MESSAGE_SEND,
    MESSAGE_REPLAY,
    RATELIMIT_BLOCK,
    AUDIT_READ,
    AUDIT_PRUNE,
    OPERATOR_CREATE,
    OPERATOR_CHANGE,
    OPERATOR_DELETE,
    TOKEN_CREATE,
    TOKEN_CHANGE,
    TOKEN_DELETE,
    GROUP_CREATE,
    GROUP_CHANGE,
    GROUP_DELETE,
)

SUCCESS = "success"
FAILURE = "failure"
DENIED = "denied"
DELIVERED = "delivered"
FAILED = "failed"
TIMEOUT = "timeout"

OUTCOMES = (SUCCESS, FAILURE, DENIED, DELIVERED, FAILED, TIMEOUT)
