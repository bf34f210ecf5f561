from __future__ import annotations

from django.db import models
from django.utils import timezone

from audit.actions import AuditAction, AuditOutcome


class AuditEvent(models.Model):
    """One thing an operator (or an auditor, or the system) did. Append-only.

    Written only by ``audit.services.audit_record``; see ``audit.chain`` for the hash chain.
    """

    # The event's position in the hash chain, assigned under the chain-head lock, so ids
    # are contiguous and their order is the order in which events committed.
    id = models.BigIntegerField(primary_key=True)
    ts = models.DateTimeField(default=timezone.now)
    actor = models.CharField(max_length=150)
    action = models.CharField(max_length=64, choices=AuditAction.choices)
    target_type = models.CharField(max_length=64, blank=True, default="")
    target_id = models.CharField(max_length=64, blank=True, default="")
    chat_id = models.BigIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=32, choices=AuditOutcome.choices, default=AuditOutcome.SUCCESS)
    request_id = models.CharField(max_length=128, blank=True, default="")
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True, default="")
    details = models.JSONField(default=dict, blank=True)
    # Which chain key signed this event's link (audit.chain_keys); empty for version-1 events.
    key_id = models.CharField(max_length=32, blank=True, default="")
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        indexes = [
            models.Index(fields=["ts", "id"], name="audit_ts_id_idx"),
            models.Index(fields=["chat_id", "ts", "id"], name="audit_chat_ts_id_idx"),
            models.Index(fields=["action", "ts", "id"], name="audit_action_ts_id_idx"),
            models.Index(fields=["actor", "ts", "id"], name="audit_actor_ts_id_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.id} {self.ts:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.outcome}"


class AuditChainHead(models.Model):
    """The last event of the chain (one row). Every append locks it, links to it and moves it."""

    id = models.PositiveSmallIntegerField(primary_key=True)
    last_event_id = models.BigIntegerField()
    last_hash = models.CharField(max_length=64)
    last_ts = models.DateTimeField(null=True)

    def __str__(self) -> str:
        return f"chain head at event #{self.last_event_id}"


class AuditChainAnchor(models.Model):
    """The last pruned event (one row): the oldest kept event links to its hash."""

    id = models.PositiveSmallIntegerField(primary_key=True)
    event_id = models.BigIntegerField()
    hash = models.CharField(max_length=64)
    ts = models.DateTimeField(null=True)
    pruned_total = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"chain anchor at event #{self.event_id}"
