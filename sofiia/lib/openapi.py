"""Shared pieces of the OpenAPI description (``/api/schema/``, drf-spectacular): the contract's
error body, its standard answers and the headers the API documents.

Every operation lists each status it can answer with the ``{"error", "detail", ...}`` body,
so a client generated from the schema, and the fuzzer in CI, know every answer there is.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from sofiia.lib.pagination import CURSOR_PATTERN, MAX_CURSOR_LENGTH, MAX_LIMIT


class ErrorSerializer(serializers.Serializer[Any]):
    """The contract's error body. ``fields`` comes with ``invalid_input``; ``scope`` and
    ``retry_after`` with ``rate_limited``."""

    error = serializers.CharField(help_text="A stable snake_case code, e.g. `invalid_input`, `not_found`.")
    detail = serializers.CharField(help_text="Human-readable text; do not parse it.")
    scope = serializers.CharField(required=False, help_text="For `rate_limited`: the limit that refused the request.")
    retry_after = serializers.IntegerField(required=False, help_text="For `rate_limited`: seconds until a retry.")

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        # A field named "fields" cannot be declared on the class: it is the serializer's own
        # attribute.
        fields = super().get_fields()
        fields["fields"] = serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()),
            required=False,
            help_text="For `invalid_input`: the messages of each invalid field.",
        )
        return fields


def response_header(
    name: str, description: str, statuses: list[int], schema: Any = OpenApiTypes.STR
) -> OpenApiParameter:
    """A header the API sends with the answers of ``statuses``."""
    return OpenApiParameter(name, schema, OpenApiParameter.HEADER, description=description, response=statuses)


def retry_after_header(*statuses: int) -> OpenApiParameter:
    return response_header(
        "Retry-After", "Seconds to wait before retrying.", list(statuses), {"type": "integer", "minimum": 0}
    )


_ERROR_TEXT = {
    400: "Malformed or invalid input (`invalid_input`, `parse_error`, `invalid_cursor`, `invalid_limit`, …).",
    401: "No valid credentials (`not_authenticated`, `authentication_failed`).",
    403: "Authenticated but not allowed (`forbidden`, `permission_denied`; CSRF for session requests).",
    404: "No such resource, or it belongs to another operator (`not_found`).",
    406: "The `Accept` header asks for something other than JSON (`not_acceptable`).",
    408: "The request body did not arrive in time (`request_timeout`).",
    413: "The request body is larger than 1 MiB (`payload_too_large`).",
    415: "The body is not `application/json` (`unsupported_media_type`).",
    503: "A dependency is unavailable (`database_unavailable`); retry after `Retry-After` seconds.",
}

READ_ERRORS = (400, 401, 403, 406, 503)
WRITE_ERRORS = (400, 401, 403, 406, 408, 413, 415, 503)


def error_response(status: int, description: str | None = None, serializer: Any = ErrorSerializer) -> OpenApiResponse:
    return OpenApiResponse(response=serializer, description=description or _ERROR_TEXT.get(status, "An error."))


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    return {status: error_response(status) for status in statuses}


def page_parameters() -> list[OpenApiParameter]:
    return [
        OpenApiParameter(
            "limit",
            # Empty is the default, like none (as an empty cursor is the first page).
            {"anyOf": [{"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, {"type": "string", "maxLength": 0}]},
            OpenApiParameter.QUERY,
            description=f"Items per page, 1 to {MAX_LIMIT} (default 50; empty is the default).",
        ),
        OpenApiParameter(
            "cursor",
            # An empty cursor is the first page, like none.
            {"type": "string", "maxLength": MAX_CURSOR_LENGTH, "pattern": f"^$|{CURSOR_PATTERN}"},
            OpenApiParameter.QUERY,
            description=(
                "The `next_cursor` of the previous page, as it was given: opaque and signed for its listing, "
                "filters and order. A cursor of this shape that the server did not issue for this listing "
                "(forged, tampered, or another listing's) is `400 invalid_cursor`."
            ),
        ),
    ]


def id_parameter(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(
        name,
        {"type": "integer", "minimum": 1, "maximum": 999_999_999_999_999_999},
        OpenApiParameter.PATH,
        description=description,
    )
