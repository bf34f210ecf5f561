from __future__ import annotations

from typing import Any

from django.http import QueryDict
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.keys import AuditKeyInvalid, AuditKeyRequired, AuditReader, audit_reader_from
from audit.models import AuditEvent
from audit.selectors import AuditFilters
from audit.services import audit_events_read, audit_read_admit, audit_read_denied
from sofiia.lib.errors import ApplicationError
from sofiia.lib.fields import StrictCharField
from sofiia.lib.openapi import error_response, page_parameters
from sofiia.lib.pagination import parse_limit

_SINGLE_VALUED = ("action", "actor", "chat_id", "since", "until", "order", "limit", "cursor")


def _refuse_repeated_parameters(params: QueryDict) -> None:
    for name in _SINGLE_VALUED:
        if len(params.getlist(name)) > 1:
            message = "Give it at most once."
            raise ApplicationError(f"{name}: {message}", code="invalid_input", extra={"fields": {name: [message]}})


class AuditEventSerializer(serializers.ModelSerializer[AuditEvent]):
    class Meta:
        model = AuditEvent
        fields = [
            "id", "ts", "actor", "action", "target_type", "target_id",
            "chat_id", "outcome", "request_id", "ip", "details",
        ]  # fmt: skip


class AuditPageSerializer(serializers.Serializer[Any]):
    items = AuditEventSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class AuditEventListApi(APIView):
    """``GET /api/audit``: the audit trail for auditors and SIEM export.

    Only the ``X-Audit-Key`` header admits a caller; operator credentials (bearer token,
    session) are not even looked at. Reads are limited per key and per client address
    (``SOFIIA_RATE_LIMIT_AUDIT_READ``); every read served is recorded, and a read whose
    record cannot be written is not served.
    """

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []

    class FilterSerializer(serializers.Serializer[dict[str, Any]]):
        action = StrictCharField(required=False, min_length=1, max_length=64)
        actor = StrictCharField(required=False, min_length=1, max_length=150)
        chat_id = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
        since = serializers.DateTimeField(required=False)
        until = serializers.DateTimeField(required=False)
        order = serializers.ChoiceField(choices=["asc", "desc"], required=False, default="desc")

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            since, until = attrs.get("since"), attrs.get("until")
            if since is not None and until is not None and since > until:
                raise serializers.ValidationError({"until": ["must not be before since."]})
            return attrs

    OutputSerializer = AuditEventSerializer

    reader: AuditReader

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        # Before anything else, whatever the method: no key, no answer but 401.
        try:
            self.reader = audit_reader_from(request._request)
        except (AuditKeyRequired, AuditKeyInvalid) as refusal:
            audit_read_denied(reason=refusal.code)
            raise
        audit_read_admit(reader=self.reader.actor)

    @extend_schema(
        operation_id="audit_list",
        summary="The audit trail (SIEM export)",
        description=(
            "Only the `X-Audit-Key` header admits a caller; operator credentials are ignored. A cursor is "
            "signed for its filters and order; with `order=asc` the last page keeps its `next_cursor`, to poll "
            "forward."
        ),
        auth=[{"auditKey": []}],  # type: ignore[list-item]  # drf-spectacular takes security requirements too
        parameters=[FilterSerializer, *page_parameters()],
        responses={
            200: AuditPageSerializer,
            400: error_response(400),
            401: error_response(401, "No `X-Audit-Key`, or a wrong one (`audit_key_required`, `audit_key_invalid`)."),
            406: error_response(406),
            429: error_response(
                429, "Over `SOFIIA_RATE_LIMIT_AUDIT_READ` for the key or the client address (`rate_limited`)."
            ),
            503: error_response(
                503,
                "The read could not be recorded, so it is not served (`audit_unavailable`, `database_unavailable`), "
                "or reads cannot be counted (`rate_limit_unavailable`).",
            ),
        },
        tags=["audit"],
    )
    def get(self, request: Request) -> Response:
        _refuse_repeated_parameters(request.query_params)
        serializer = self.FilterSerializer(data=request.query_params)
        serializer.is_valid(raise_exception=True)
        params = serializer.validated_data
        page = audit_events_read(
            reader=self.reader,
            filters=AuditFilters(
                action=params.get("action"),
                actor=params.get("actor"),
                chat_id=params.get("chat_id"),
                since=params.get("since"),
                until=params.get("until"),
            ),
            order=params["order"],
            limit=parse_limit(request.query_params.get("limit")),
            cursor=request.query_params.get("cursor") or None,
        )
        body = {"items": self.OutputSerializer(page.items, many=True).data, "next_cursor": page.next_cursor}
        return Response(body, headers={"Cache-Control": "no-store"})
