from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from django.db.models import QuerySet

from audit.chain import format_ts
from audit.models import AuditEvent


@dataclass(frozen=True)
class AuditFilters:
    action: str | None = None
    actor: str | None = None
    chat_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None

    def as_dict(self) -> dict[str, str | int]:
        """The filters that are set, as plain JSON values (for cursors and for the audit trail)."""
        values: dict[str, str | int] = {}
        for name, value in asdict(self).items():
            if value is None:
                continue
            values[name] = format_ts(value) if isinstance(value, datetime) else value
        return values


def audit_event_list(*, filters: AuditFilters) -> QuerySet[AuditEvent]:
    """Events matching ``filters``: ``since`` is inclusive, ``until`` exclusive."""
    queryset = AuditEvent.objects.all()
    if filters.action is not None:
        queryset = queryset.filter(action=filters.action)
    if filters.actor is not None:
        queryset = queryset.filter(actor=filters.actor)
    if filters.chat_id is not None:
        queryset = queryset.filter(chat_id=filters.chat_id)
    if filters.since is not None:
        queryset = queryset.filter(ts__gte=filters.since)
    if filters.until is not None:
        queryset = queryset.filter(ts__lt=filters.until)
    return queryset


def audit_prunable_count(*, older_than: datetime) -> int:
    return AuditEvent.objects.filter(ts__lt=older_than).count()
