from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from chats.search import search_fold
from chats.validators import validate_agent_name

CHAT_TITLE_MAX_LENGTH = 200
AGENT_NAME_MAX_LENGTH = 64
MESSAGE_TEXT_MAX_LENGTH = 16_000
SYSTEM_PROMPT_MAX_LENGTH = 8_000
MODEL_NAME_MAX_LENGTH = 200
TEMPERATURE_MAX = 2.0
MAX_TOKENS_MAX = 32_768
CONTEXT_TURNS_MAX = 50


def default_context_turns() -> int:
    """A new chat's ``context_turns``: ``SOFIIA_CONTEXT_TURNS`` as the process was started with."""
    return int(settings.SOFIIA_CONTEXT_TURNS)


def _fill_search_copy(obj: models.Model, source: str, copy: str, update_fields: Any) -> Any:
    setattr(obj, copy, search_fold(getattr(obj, source)))
    if update_fields is not None and source in update_fields and copy not in update_fields:
        return [*update_fields, copy]
    return update_fields


class ChatQuerySet(models.QuerySet["Chat"]):
    def bulk_create(  # type: ignore[override]
        self, objs: Iterable[Chat], *args: Any, **kwargs: Any
    ) -> list[Chat]:
        rows = list(objs)
        for chat in rows:
            chat.title_search = search_fold(chat.title)
        return super().bulk_create(rows, *args, **kwargs)  # type: ignore[arg-type,return-value]


class MessageQuerySet(models.QuerySet["Message"]):
    def bulk_create(  # type: ignore[override]
        self, objs: Iterable[Message], *args: Any, **kwargs: Any
    ) -> list[Message]:
        rows = list(objs)
        for message in rows:
            message.search_text = search_fold(message.text)
        return super().bulk_create(rows, *args, **kwargs)  # type: ignore[arg-type,return-value]


class Chat(models.Model):
    """A conversation of one operator with one agent on one router node."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="chats")
    title = models.CharField(max_length=CHAT_TITLE_MAX_LENGTH)
    agent = models.CharField(max_length=AGENT_NAME_MAX_LENGTH, validators=[validate_agent_name])
    node = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    # The console's list order: moved forward by every message stored in the chat.
    last_activity_at = models.DateTimeField(default=timezone.now)
    # An archived chat leaves the console's list; unarchiving brings it back.
    archived_at = models.DateTimeField(null=True, blank=True)
    # When the owner last opened the chat: replies after it are unread.
    last_read_at = models.DateTimeField(null=True, blank=True)

    # What the agent is asked with every send (the infer body's fields of the same names).
    system_prompt = models.TextField(max_length=SYSTEM_PROMPT_MAX_LENGTH, blank=True, default="")
    model = models.CharField(max_length=MODEL_NAME_MAX_LENGTH, null=True, blank=True)
    temperature = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(TEMPERATURE_MAX)]
    )
    max_tokens = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(MAX_TOKENS_MAX)]
    )
    # Earlier exchanges sent along with each new message (0: the text alone).
    context_turns = models.PositiveSmallIntegerField(
        default=default_context_turns, validators=[MaxValueValidator(CONTEXT_TURNS_MAX)]
    )
    # The title case-folded, for search in every script (chats.search); filled by save().
    title_search = models.TextField(blank=True, default="", editable=False)

    objects = ChatQuerySet.as_manager()

    class Meta:
        indexes = [
            # GET /api/chats: the owner's chats in (created_at, id) keyset order.
            models.Index(fields=["owner", "-created_at", "-id"], name="chat_owner_created_idx"),
            # The console's list: the owner's chats by last activity, archived ones apart.
            models.Index(
                fields=["owner", "-last_activity_at", "-id"],
                condition=Q(archived_at__isnull=True),
                name="chat_owner_activity_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title} ({self.agent}@{self.node})"

    def save(self, *args: Any, update_fields: Any = None, **kwargs: Any) -> None:
        update_fields = _fill_search_copy(self, "title", "title_search", update_fields)
        super().save(*args, update_fields=update_fields, **kwargs)


class Message(models.Model):
    class Role(models.TextChoices):
        OPERATOR = "operator"
        AGENT = "agent"

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    chat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=Role.choices)
    # The database keeps any length; the limit is what a send may carry (forms and the API).
    text = models.TextField(max_length=MESSAGE_TEXT_MAX_LENGTH)
    ts = models.DateTimeField(default=timezone.now)
    node = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices)
    # Operator messages only: who sent it, with which Idempotency-Key, and its delivery state.
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    delivery_started_at = models.DateTimeField(null=True, blank=True)
    failure = models.CharField(max_length=32, blank=True, default="")
    # Agent messages only: the operator message this one answers.
    reply_to = models.OneToOneField("self", null=True, blank=True, on_delete=models.CASCADE, related_name="reply")
    # Agent messages only: what the node said of its answer, and how long its call took.
    model = models.CharField(max_length=MODEL_NAME_MAX_LENGTH, null=True, blank=True)
    backend = models.CharField(max_length=MODEL_NAME_MAX_LENGTH, null=True, blank=True)
    tokens_used = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    # Agent messages only: the reply rendered once, when stored (chats.markdown.reply_html), so
    # a page never renders a reply again nor reads its text; a reply past the renderer's bounds
    # is stored as its escaped start in a <pre>. Empty only for an empty reply.
    html = models.TextField(blank=True, default="")
    # Operator messages only: what the first delivery attempt asked the node besides the
    # text — the chat's settings then and the ids of the messages sent as context — so a
    # retry asks the same, and an auditor can rebuild the exact request (audit_prompt).
    infer_request = models.JSONField(null=True, blank=True)
    # The text case-folded, for search in every script (chats.search); filled by save() and
    # bulk_create, indexed by a trigram index (PostgreSQL) or an FTS5 table (SQLite).
    search_text = models.TextField(blank=True, default="", editable=False)

    objects = MessageQuerySet.as_manager()

    class Meta:
        indexes = [
            # GET /api/chats/{id}/messages: the chat's messages in (ts, id) keyset order.
            models.Index(fields=["chat", "-ts", "-id"], name="message_chat_ts_idx"),
            # The console's pending/failed badges: a probe per chat, however long the chat.
            # (Not a partial index: SQLite cannot match a partial index's condition against a
            # query's bound parameters, and would scan the chat instead.)
            models.Index(fields=["chat", "status"], name="message_chat_status_idx"),
            # The admin's usage view: the replies of a date range, across all chats. Led by the
            # role, so no query of one chat's messages (which names no role) is planned on it.
            models.Index(fields=["role", "ts"], name="message_role_ts_idx"),
        ]
        constraints = [
            # The database's own guard for exactly-once sends: whatever the idempotency
            # cache knows or forgets, one key yields at most one operator message.
            models.UniqueConstraint(
                fields=["chat", "operator", "idempotency_key"],
                condition=Q(role="operator", idempotency_key__isnull=False),
                name="message_unique_idempotency_key",
            ),
            models.CheckConstraint(condition=Q(role__in=["operator", "agent"]), name="message_role_valid"),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "delivered", "failed"]), name="message_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.role} in chat {self.chat_id} ({self.status})"

    def save(self, *args: Any, update_fields: Any = None, **kwargs: Any) -> None:
        update_fields = _fill_search_copy(self, "text", "search_text", update_fields)
        super().save(*args, update_fields=update_fields, **kwargs)


class MessageUsage(Message):
    """The admin's usage view (sends and tokens per operator, node, model and day): a proxy,
    so the view has its place in the admin index; it adds no table."""

    class Meta:
        proxy = True
        verbose_name = "usage"
        verbose_name_plural = "usage"
