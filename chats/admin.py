"""Chats and messages in the admin. Every change to a chat is an audit event; messages are
read-only there and chats cannot be deleted (the messages are the record of what was said);
a chat's agent and node are checked as the API checks them."""

from __future__ import annotations

import csv
from datetime import date, timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from audit.actions import AuditAction
from audit.admin import AuditedAdminMixin
from audit.services import audit_record
from chats.models import Chat, Message, MessageUsage
from chats.selectors import USAGE_MAX_DAYS, UsageRow, usage_by_day


class ChatAdminForm(forms.ModelForm[Chat]):
    node = forms.ChoiceField(choices=())

    class Meta:
        model = Chat
        fields = ["title", "agent", "node"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["node"].choices = [(name, name) for name in settings.SOFIIA_NODES]  # type: ignore[attr-defined]


@admin.register(Chat)
class ChatAdmin(AuditedAdminMixin, admin.ModelAdmin[Chat]):
    audit_subject = "chat"
    audit_target_type = "chat"
    form = ChatAdminForm
    list_display = ["id", "title", "owner", "agent", "node", "created_at"]
    list_filter = ["node"]
    search_fields = ["title", "agent", "owner__username"]
    readonly_fields = ["owner", "created_at"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a chat belongs to the operator who made it in the console or the API

    def has_delete_permission(self, request: HttpRequest, obj: Chat | None = None) -> bool:
        return False  # its messages are the record, which the admin does not destroy

    def audit_target(self, obj: Chat) -> tuple[Any, dict[str, Any]]:
        return obj.pk, {"name": str(obj), "agent": obj.agent, "node": obj.node, "owner": obj.owner_id}


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin[Message]):
    list_display = ["id", "chat", "role", "status", "node", "ts", "attempts"]
    list_filter = ["role", "status", "node"]
    search_fields = ["idempotency_key", "chat__title"]
    readonly_fields = [f.name for f in Message._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Message | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Message | None = None) -> bool:
        return False


USAGE_DEFAULT_DAYS = 30
USAGE_CSV_FIELDS = ("day", "operator", "node", "model", "sends", "tokens")


class UsageRangeError(ValueError):
    """A usage date range the view refuses (bad dates, reversed, or too long): a 400."""


def _usage_range(request: HttpRequest) -> tuple[date, date]:
    """``since``/``until`` (``YYYY-MM-DD``, inclusive) from the query; the last 30 days by default."""
    today = timezone.now().date()
    try:
        until = date.fromisoformat(request.GET["until"]) if request.GET.get("until") else today
        since = (
            date.fromisoformat(request.GET["since"])
            if request.GET.get("since")
            else until - timedelta(days=USAGE_DEFAULT_DAYS - 1)
        )
    except ValueError:
        raise UsageRangeError("Dates are YYYY-MM-DD.") from None
    if since > until:
        raise UsageRangeError("The range starts after it ends.")
    if (until - since).days + 1 > USAGE_MAX_DAYS:
        raise UsageRangeError(f"At most {USAGE_MAX_DAYS} days at once.")
    return since, until


class _Echo:
    def write(self, value: str) -> str:
        return value


def _usage_csv(rows: list[UsageRow], *, since: date, until: date) -> HttpResponse:
    writer = csv.writer(_Echo())
    body = writer.writerow(USAGE_CSV_FIELDS) + "".join(
        # Operator names and models come from outside; none can start a spreadsheet formula.
        writer.writerow(
            [row.day.isoformat(), _csv_cell(row.operator), row.node, _csv_cell(row.model), row.sends, row.tokens]
        )
        for row in rows
    )
    return HttpResponse(
        body,
        content_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="usage-{since.isoformat()}-{until.isoformat()}.csv"',
            "Cache-Control": "no-store",
        },
    )


def _csv_cell(value: str) -> str:
    return "'" + value if value.startswith(("=", "+", "-", "@", "\t", "\r")) else value


@admin.register(MessageUsage)
class MessageUsageAdmin(admin.ModelAdmin[MessageUsage]):
    """Usage for auditors: delivered sends and tokens per operator, node, model and day, for a
    date range (the last 30 days by default, at most a year), as a table or CSV. Read-only,
    for whoever may read the audit trail (the ``auditors`` group) and superusers; each view is
    an ``audit.read`` event like the audit trail's own views."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        user: Any = request.user
        return bool(user.is_active and user.is_staff and user.has_perm("audit.view_auditevent"))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[Any]:
        # Only the list: there is no row of its own to open.
        return [
            path(
                "",
                self.admin_site.admin_view(self.changelist_view),
                name=f"{self.opts.app_label}_{self.opts.model_name}_changelist",
            )
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            since, until = _usage_range(request)
        except UsageRangeError as error:
            today = timezone.now().date()
            return self._render(request, [], today - timedelta(days=USAGE_DEFAULT_DAYS - 1), today, str(error), 400)
        rows = usage_by_day(since=since, until=until)
        csv_wanted = request.GET.get("format") == "csv"
        audit_record(
            actor=request.user.get_username(),
            action=AuditAction.AUDIT_READ,
            target_type="usage",
            details={
                "via": "admin",
                "view": "usage.csv" if csv_wanted else "usage",
                "since": since.isoformat(),
                "until": until.isoformat(),
            },
        )
        if csv_wanted:
            return _usage_csv(rows, since=since, until=until)
        return self._render(request, rows, since, until, "", 200)

    def _render(
        self, request: HttpRequest, rows: list[UsageRow], since: date, until: date, error: str, status: int
    ) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": "Usage",
            "opts": self.opts,
            "rows": rows,
            "since": since,
            "until": until,
            "error": error,
            "total_sends": sum(row.sends for row in rows),
            "total_tokens": sum(row.tokens for row in rows),
        }
        response = TemplateResponse(request, "admin/chats/messageusage/usage.html", context, status=status)
        response["Cache-Control"] = "no-store"
        return response
