"""The audit vocabulary: every action this application records and every outcome an event
can have. ``audit_record`` takes these and nothing else, and the admin builds its filters
from them. Every action is ``<subject>.<verb>``."""

from __future__ import annotations

from django.db import models


class AuditAction(models.TextChoices):
    AUTH_LOGIN = "auth.login", "login"
    AUTH_LOGIN_FAILED = "auth.login_failed", "login failed"
    AUTH_LOGOUT = "auth.logout", "logout"
    AUTHZ_DENIED = "authz.denied", "access refused"
    CHAT_CREATE = "chat.create", "chat created"
    CHAT_CHANGE = "chat.change", "chat changed"
    CHAT_RENAME = "chat.rename", "chat renamed"
    CHAT_ARCHIVE = "chat.archive", "chat archived"
    CHAT_UNARCHIVE = "chat.unarchive", "chat unarchived"
    CHAT_EXPORT = "chat.export", "chat exported"
    MESSAGE_SEND = "message.send", "message sent"
    MESSAGE_REPLAY = "message.replay", "idempotent replay"
    RATELIMIT_BLOCK = "ratelimit.block", "rate-limit block"
    AUDIT_READ = "audit.read", "audit trail read"
    AUDIT_PRUNE = "audit.prune", "audit trail pruned"
    OPERATOR_CREATE = "operator.create", "operator created"
    OPERATOR_CHANGE = "operator.change", "operator changed"
    OPERATOR_DELETE = "operator.delete", "operator deleted"
    # Action names, not secrets.
    TOKEN_CREATE = "token.create", "token created"
    TOKEN_CHANGE = "token.change", "token changed"
    TOKEN_DELETE = "token.delete", "token deleted"
    GROUP_CREATE = "group.create", "group created"
    GROUP_CHANGE = "group.change", "group changed"
    GROUP_DELETE = "group.delete", "group deleted"


class AuditOutcome(models.TextChoices):
    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"
    DELIVERED = "delivered"
    FAILED = "failed"
    TIMEOUT = "timeout"
    BLOCKED = "blocked"
