"""The API's OpenAPI 3.1 description: what drf-spectacular cannot see for itself.

- bearer tokens (``Authorization: Bearer <token>``) and the audit key as security schemes;
- the health endpoints, which are plain Django views;
- the ``X-Request-ID`` header, taken from a trusted proxy's request and echoed on every answer;
- what DRF's text fields refuse that a bare ``type: string`` would allow (:class:`AutoSchema`);
- the node of a new chat as an ``enum`` of the configured ``SOFIIA_NODES``, read when the
  description is generated (``/api/schema/`` describes the instance that serves it).

A request the description calls valid is one the server accepts, or refuses only for a state
the description documents (a cursor it did not issue, an idempotency key already used): the
fuzzer in CI holds the server to that (``tests/fuzz``).

``make schema`` writes ``docs/openapi.yaml``; ``make lint`` fails when it is out of date or the
generator warns.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import force_instance, is_basic_serializer
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

from sofiia.lib.fields import WHITESPACE_CLASS, not_blank

HEALTH_PATHS = {
    "/api/health": "health_retrieve",
    "/readyz": "readyz_retrieve",
}

_ERROR_REF = {"$ref": "#/components/schemas/Error"}
_REQUEST_ID_HEADER = {
    "description": (
        "The request's id: the `X-Request-ID` a trusted proxy forwarded when it is a sane token, else a new one."
    ),
    "schema": {"type": "string"},
}
_REQUEST_ID = {"$ref": "#/components/headers/X-Request-ID"}


# DRF's CharField refuses NUL characters, and, trimming whitespace, a text that is only
# whitespace unless blanks are allowed: said as a pattern, so a generated client (and the
# fuzzer) knows such a text is invalid. The whitespace is spelled out — what ``str.strip``
# takes away — because regex engines disagree on ``\s``.
_SPACE = WHITESPACE_CLASS
NO_NUL_PATTERN = r"^[^\u0000]*$"
NOT_BLANK_PATTERN = rf"^[^\u0000]*[^{_SPACE}\u0000][^\u0000]*$"


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's schema, with the text rules of DRF's ``CharField`` on request fields."""

    def _process_override_parameters(self, direction: str = "request") -> Any:
        # DRF reads an optional field given empty in a query (``order=``) as not given.
        result = super()._process_override_parameters(direction)
        for parameter in self.get_override_parameters():
            if isinstance(parameter, OpenApiParameter) or not is_basic_serializer(parameter):
                continue
            for name in force_instance(parameter).fields:
                entry = result.get((name, OpenApiParameter.QUERY))
                if entry and not entry.get("required"):
                    _allow_empty(entry["schema"])
        return result

    def _map_basic_serializer(self, serializer: Any, direction: str) -> Any:
        schema = super()._map_basic_serializer(serializer, direction)
        if direction != "request":
            return schema
        if getattr(serializer, "refuses_unknown_fields", False):
            schema["additionalProperties"] = False
        properties = schema.get("properties", {})
        for field in serializer.fields.values():
            if isinstance(field, serializers.CharField) and not isinstance(field, _NOT_FREE_TEXT):
                _add_text_pattern(field, properties.get(field.field_name))
        return schema


def _allow_empty(schema: dict[str, Any]) -> None:
    if schema.get("type") != "string":
        return
    if "enum" in schema:
        schema["enum"] = [*schema["enum"], ""]
        schema.pop("minLength", None)
        return
    rules = {key: schema.pop(key) for key in ("format", "pattern", "minLength", "maxLength") if key in schema}
    if rules:
        schema["anyOf"] = [rules, {"maxLength": 0}]
        schema["description"] = "Empty is the same as not given."


def _add_text_pattern(field: serializers.CharField, schema: dict[str, Any] | None) -> None:
    if schema is None or schema.get("type") not in ("string", ["string", "null"]):
        return
    if any(key in schema for key in ("pattern", "format", "enum")):
        return  # a field's own rule (the agent name's, a date's) is stricter than these
    blank_refused = (field.trim_whitespace and not field.allow_blank) or not_blank in field.validators
    schema["pattern"] = NOT_BLANK_PATTERN if blank_refused else NO_NUL_PATTERN


# CharField subclasses that parse their text into something else say so with a format.
_NOT_FREE_TEXT = (serializers.EmailField, serializers.URLField, serializers.UUIDField, serializers.IPAddressField)


class OperatorScheme(OpenApiAuthenticationExtension):
    """An operator's bearer token, or the console's session cookie: either one will do."""

    target_class = "operators.auth.OperatorAuthentication"
    name = ["bearerAuth", "cookieAuth"]

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[Any]]]:
        return [{"bearerAuth": []}, {"cookieAuth": []}]

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, Any]]:
        return [
            {
                "type": "http",
                "scheme": "bearer",
                "description": "An operator's API token, from `manage.py create_operator NAME --token`.",
            },
            {"type": "apiKey", "in": "cookie", "name": settings.SESSION_COOKIE_NAME},
        ]


def _health_components() -> dict[str, Any]:
    checks = {"type": "string", "enum": ["ok", "degraded", "error"]}
    return {
        "Health": {
            "type": "object",
            "properties": {
                "status": {"type": "string", "enum": ["ok", "degraded", "error"]},
                "checks": {
                    "type": "object",
                    "properties": {
                        "database": checks,
                        "cache": checks,
                        "idempotency": checks,
                        "ratelimit": checks,
                    },
                    "required": ["database", "cache", "idempotency", "ratelimit"],
                },
                "backends": {"type": "object", "additionalProperties": {"type": "string"}},
                "version": {"type": "string"},
                "error": {"type": "string", "description": "`database_unavailable` when the status is `error`."},
                "detail": {"type": "string"},
            },
            "required": ["status", "checks", "backends", "version"],
        },
        "Live": {
            "type": "object",
            "properties": {"status": {"type": "string", "enum": ["ok"]}},
            "required": ["status"],
        },
    }


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
        "headers": {"X-Request-ID": _REQUEST_ID},
    }


def _health_operation(operation_id: str) -> dict[str, Any]:
    health = {"$ref": "#/components/schemas/Health"}
    return {
        "get": {
            "operationId": operation_id,
            "summary": "Readiness: can this instance serve? (database and backends)",
            "description": "`degraded` (200) when a Redis backend is down; 503 when the database is.",
            "tags": ["health"],
            "security": [{}],
            "responses": {
                "200": _json(health, "Ready (`ok` or `degraded`)."),
                "405": _json(_ERROR_REF, "Only GET."),
                "503": _json(health, "The database is unreachable (`error`)."),
            },
        }
    }


# OpenAPI links: how the answer of one operation feeds the next (a generated client's
# navigation, and the fuzzer's stateful sequences create -> send -> list).
_LINKS = {
    ("/api/chats", "post", "201"): {
        "SendToTheChat": ("chats_send", {"chat_id": "$response.body#/id"}),
        "TheChat": ("chats_retrieve", {"chat_id": "$response.body#/id"}),
        "TheChatsMessages": ("chats_messages_list", {"chat_id": "$response.body#/id"}),
    },
    ("/api/chats/{chat_id}/send", "post", "201"): {
        "TheChatsMessages": ("chats_messages_list", {"chat_id": "$response.body#/operator_message/chat_id"}),
        "SendAgain": ("chats_send", {"chat_id": "$response.body#/operator_message/chat_id"}),
    },
    ("/api/chats", "get", "200"): {
        "TheNextPage": ("chats_list", {"cursor": "$response.body#/next_cursor"}),
    },
}


def _add_links(paths: dict[str, Any]) -> None:
    for (path, method, status), links in _LINKS.items():
        response = paths[path][method]["responses"][status]
        response["links"] = {
            name: {"operationId": operation_id, "parameters": parameters}
            for name, (operation_id, parameters) in links.items()
        }


def _describe_nodes(components: dict[str, Any]) -> None:
    """A request's ``node`` is one of the configured nodes (else ``400 unknown_node``)."""
    names: list[Any] = list(settings.SOFIIA_NODES)
    for name, component in components.items():
        node = component.get("properties", {}).get("node") if name.endswith("Request") else None
        if node is None:
            continue
        node.pop("minLength", None)
        node.pop("maxLength", None)
        node.pop("pattern", None)
        node["enum"] = [*names, None] if "null" in node.get("type", []) else names
        node["description"] = "One of the nodes this instance is configured with (`SOFIIA_NODES`)."


def add_health_and_request_ids(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the health endpoints, links between operations,
    the configured nodes, and ``X-Request-ID`` on every answer."""
    paths = result.setdefault("paths", {})
    _add_links(paths)
    _describe_nodes(result.get("components", {}).get("schemas", {}))
    for path, operation_id in HEALTH_PATHS.items():
        paths[path] = _health_operation(operation_id)
    paths["/livez"] = {
        "get": {
            "operationId": "livez_retrieve",
            "summary": "Liveness: the process answers (no database, Redis or node)",
            "tags": ["health"],
            "security": [{}],
            "responses": {
                "200": _json({"$ref": "#/components/schemas/Live"}, "Alive."),
                "405": _json(_ERROR_REF, "Only GET."),
            },
        }
    }
    result["paths"] = dict(sorted(paths.items()))
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components.update(_health_components())
    result["components"]["schemas"] = dict(sorted(components.items()))
    result["components"]["headers"] = {"X-Request-ID": _REQUEST_ID_HEADER}
    for item in paths.values():
        for operation in item.values():
            for response in operation.get("responses", {}).values():
                response.setdefault("headers", {}).setdefault("X-Request-ID", _REQUEST_ID)
    return result
