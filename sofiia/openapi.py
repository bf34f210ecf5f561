"""The API's OpenAPI 3.1 description: what drf-spectacular cannot see for itself.

- bearer tokens (``Authorization: Bearer <token>``) and the audit key as security schemes;
- the health endpoints, which are plain Django views;
- the ``X-Request-ID`` header, taken from a trusted proxy's request and echoed on every answer.

``make schema`` writes ``docs/openapi.yaml``; ``make lint`` fails when it is out of date or the
generator warns.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension

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


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "operators.auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An operator's API token, from `manage.py create_operator NAME --token`.",
        }


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


def add_health_and_request_ids(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the health endpoints, links between operations,
    and ``X-Request-ID`` on every answer."""
    paths = result.setdefault("paths", {})
    _add_links(paths)
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
