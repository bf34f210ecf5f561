"""The audit trail in the Django admin, and audited admin changes to operators.

Audit events are read-only for everyone, superusers included; members of the
``auditors`` group (staff with only ``audit.view_auditevent``) may list, filter, open and
export them. Every such view is itself an ``audit.read`` event. Adding, changing or
deleting users, their API tokens and groups in the admin writes an audit event in the
same transaction as the change.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone

from audit.actions import AuditAction, AuditOutcome
from audit.chain import format_ts
from audit.content import bounded_query
from audit.models import AuditEvent
from audit.services import (
    AuditReadLimited,
    AuditReadLimitUnavailable,
    AuditUnavailable,
    audit_read_admit,
    audit_record,
)
from sofiia.lib.errors import DEPENDENCY_RETRY_AFTER_SECONDS, is_database_outage
from sofiia.lib.text import is_storable

EVENT_FIELDS = (
    "id", "ts", "actor", "action", "outcome", "target_type", "target_id", "chat_id",
    "request_id", "ip", "user_agent", "details", "prev_hash", "hash",
)  # fmt: skip
# A spreadsheet runs a cell that starts with one of these as a formula; actors and user
# agents come from clients (a failed login's user name), so such cells are defused.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
MAX_BIGINT = 2**63 - 1


class _ChoiceFilter(admin.SimpleListFilter):
    choices_list: list[tuple[str, str]] = []
    field = ""

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(value, value) for value, _label in self.choices_list]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(**{self.field: value}) if value else queryset


class ActionFilter(_ChoiceFilter):
    # Known actions, not SELECT DISTINCT: that would scan the whole table on every page view.
    title = "action"
    parameter_name = field = "action"
    choices_list = AuditAction.choices


class OutcomeFilter(_ChoiceFilter):
    title = "outcome"
    parameter_name = field = "outcome"
    choices_list = AuditOutcome.choices


class ActorFilter(admin.SimpleListFilter):
    """An exact actor, typed in (there are too many actors for a list of links)."""

    title = "actor"
    parameter_name = "actor"
    template = "admin/audit/input_filter.html"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return []

    def has_output(self) -> bool:
        return True

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(actor=value) if value else queryset

    def choices(self, changelist: Any) -> Iterator[Any]:
        yield {
            "selected": self.value() is None,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": "All",
            "hidden": [
                (name, value)
                for name, values in changelist.filter_params.items()
                if name != self.parameter_name
                for value in values
            ],
        }


def _csv_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return "'" + value
    return value


class _Echo:
    """A file-like object whose ``write`` returns what it was given, for streaming csv rows."""

    def write(self, value: str) -> str:
        return value


def _csv_rows(events: Iterable[AuditEvent]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(EVENT_FIELDS)
    for event in events:
        yield writer.writerow(
            [
                event.id,
                format_ts(event.ts),
                _csv_cell(event.actor),
                _csv_cell(event.action),
                _csv_cell(event.outcome),
                _csv_cell(event.target_type),
                _csv_cell(event.target_id),
                event.chat_id if event.chat_id is not None else "",
                _csv_cell(event.request_id),
                event.ip or "",
                _csv_cell(event.user_agent),
                json.dumps(event.details, sort_keys=True, ensure_ascii=False),
                event.prev_hash,
                event.hash,
            ]
        )


def _refused(request: HttpRequest, status: int, title: str, message: str, retry_after: int = 0) -> TemplateResponse:
    context = {**admin.site.each_context(request), "title": title, "message": message, "retry_after": retry_after}
    response = TemplateResponse(request, "admin/audit/refused.html", context, status=status)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response


def _admin_read_refusal(request: HttpRequest) -> TemplateResponse | None:
    """Why a read of the audit trail in the admin is not served, or ``None`` to go on.

    A query the trail could not even be searched with (NUL in a filter or the search) is a
    400; over ``SOFIIA_RATE_LIMIT_AUDIT_READ`` per user or client address, a 429.
    """
    if any(not is_storable(name) or any(not is_storable(v) for v in values) for name, values in request.GET.lists()):
        return _refused(request, 400, "Bad request", "The search or a filter holds characters no event can contain.")
    try:
        audit_read_admit(reader=f"user:{request.user.pk}")
    except AuditReadLimited as limited:
        retry_after = int(limited.extra.get("retry_after", 1))
        return _refused(request, 429, "Too many reads", "Too many reads of the audit trail.", retry_after)
    except AuditReadLimitUnavailable as unavailable:
        return _refused(request, 503, "Unavailable", unavailable.detail, DEPENDENCY_RETRY_AFTER_SECONDS)
    return None


def _record_admin_read(request: HttpRequest, view: str, **details: Any) -> TemplateResponse | None:
    """Record the read about to be served; a 503 page instead when it cannot be recorded."""
    try:
        audit_record(
            actor=request.user.get_username(),
            action=AuditAction.AUDIT_READ,
            target_type="audit",
            details={"via": "admin", "view": view, **bounded_query(request.GET), **details},
        )
    except Exception as exc:
        if not (isinstance(exc, AuditUnavailable) or is_database_outage(exc)):
            raise
        message = "The read could not be recorded in the audit trail, so it is not shown."
        return _refused(request, 503, "Audit trail unavailable", message, DEPENDENCY_RETRY_AFTER_SECONDS)
    return None


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin[AuditEvent]):
    list_display = ["id", "ts", "actor", "action", "outcome", "target", "chat_id", "ip", "request_id"]
    list_display_links = ["id", "ts"]
    list_filter = [ActionFilter, ActorFilter, OutcomeFilter, ("ts", admin.DateFieldListFilter)]
    # get_search_results does the searching; this turns the search box on.
    search_fields = ["=chat_id", "=request_id"]
    search_help_text = "An exact chat id or request id."
    ordering = ["-ts", "-id"]
    list_per_page = 100
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions = None
    fields = EVENT_FIELDS
    readonly_fields = EVENT_FIELDS

    @admin.display(description="target")
    def target(self, event: AuditEvent) -> str:
        return f"{event.target_type} {event.target_id}".strip()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[AuditEvent], search_term: str
    ) -> tuple[QuerySet[AuditEvent], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        condition = Q(request_id=term)
        if term.isdigit() and int(term) <= MAX_BIGINT:
            condition |= Q(chat_id=int(term))
        return queryset.filter(condition), False

    def get_urls(self) -> list[URLPattern]:
        export = path(
            "export.csv",
            self.admin_site.admin_view(self.export_csv_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_export",
        )
        return [export, *super().get_urls()]

    # Every view that shows events is admitted (limits, a query that can be searched) before
    # anything is read, and recorded before its response is rendered or streamed: a read
    # that cannot be recorded is not served.

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if self.has_view_permission(request) and (refusal := _admin_read_refusal(request)) is not None:
            return refusal
        response = super().changelist_view(request, extra_context)
        if isinstance(response, TemplateResponse) and response.status_code == 200:
            return _record_admin_read(request, "list") or response
        return response

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if self.has_view_permission(request) and (refusal := _admin_read_refusal(request)) is not None:
            return refusal
        response = super().change_view(request, object_id, form_url, extra_context)
        if isinstance(response, TemplateResponse) and response.status_code == 200:
            return _record_admin_read(request, "detail", event_id=object_id) or response
        return response

    def export_csv_view(self, request: HttpRequest) -> HttpResponseBase:
        """The change list's current selection (filters, search, date, order) as CSV, streamed."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        if (refusal := _admin_read_refusal(request)) is not None:
            return refusal
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseBadRequest("These filters are not valid for the audit event list.")
        events = changelist.get_queryset(request)
        if (refusal := _record_admin_read(request, "export")) is not None:
            return refusal
        filename = f"audit-events-{timezone.now():%Y%m%dT%H%M%SZ}.csv"
        return StreamingHttpResponse(
            _csv_rows(events.iterator(chunk_size=2000)),
            content_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
        )


class AuditedAdminMixin(admin.ModelAdmin[Any]):
    """Writes an audit event for every add, change and delete made through this admin."""

    audit_subject = ""
    audit_target_type = ""

    def audit_target(self, obj: Any) -> tuple[Any, dict[str, Any]]:
        """The target id and the details that name ``obj`` in its audit event."""
        return obj.pk, {"name": str(obj)}

    def _audit(self, request: HttpRequest, obj: Model, verb: str, changes: Any = None) -> None:
        target_id, details = self.audit_target(obj)
        if changes:
            details["changes"] = changes
        audit_record(
            actor=request.user.get_username(),
            action=AuditAction(f"{self.audit_subject}.{verb}"),
            target_type=self.audit_target_type,
            target_id=target_id,
            chat_id=target_id if self.audit_target_type == "chat" else None,
            details={"via": "admin", **details},
        )

    def log_addition(self, request: HttpRequest, obj: Model, message: Any) -> Any:
        entry = super().log_addition(request, obj, message)
        self._audit(request, obj, "create", message)
        return entry

    def log_change(self, request: HttpRequest, obj: Model, message: Any) -> Any:
        entry = super().log_change(request, obj, message)
        self._audit(request, obj, "change", message)
        return entry

    def log_deletions(self, request: HttpRequest, queryset: Any) -> Any:
        entries = super().log_deletions(request, queryset)
        for obj in queryset:
            self._audit(request, obj, "delete")
        return entries
