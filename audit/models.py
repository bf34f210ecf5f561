from __future__ import annotations

from django.db import models
from django.utils import timezone


class AuditEvent(models.Model):
    """One thing an operator (or an auditor, or the system) did. Append-only."""

    ts = models.DateTimeField(default=timezone.now)
    actor = models.CharField(max_length=150)
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64, blank=True, default="")
    target_id = models.CharField(max_length=64, blank=True, default="")
    chat_id = models.BigIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=32, default="success")
    request_id = models.CharField(max_length=128, blank=True, default="")
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True, default="")
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["ts", "id"], name="audit_ts_id_idx"),
            models.Index(fields=["chat_id", "ts", "id"], name="audit_chat_ts_id_idx"),
            models.Index(fields=["action", "ts", "id"], name="audit_action_ts_id_idx"),
            models.Index(fields=["actor", "ts", "id"], name="audit_actor_ts_id_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.ts:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.outcome}"
