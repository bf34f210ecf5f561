from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chats.errors import MessageDeliveryFailed
from chats.export import EXPORT_FORMATS
from chats.idempotency import IDEMPOTENCY_KEY_HEADER, REPLAYED_HEADER
from chats.search import SEARCH_MAX_LENGTH
from chats.selectors import (
    chat_get_for_operator,
    chat_list_for_operator,
    message_list_for_chat,
    message_search_for_operator,
)
from chats.sending import send_for_request, send_limit_headers
from chats.serializers import (
    ChatChangeInputSerializer,
    ChatExportSerializer,
    ChatInputSerializer,
    ChatOutputSerializer,
    ChatPageSerializer,
    MessageOutputSerializer,
    MessagePageSerializer,
    SearchPageSerializer,
    SendErrorSerializer,
    SendInputSerializer,
    SendOutputSerializer,
    send_text_validated,
)
from chats.services import SendOutcome, chat_change, chat_create, chat_export
from operators.auth import authenticated_operator
from sofiia.lib.errors import ApplicationError, error_body
from sofiia.lib.openapi import (
    READ_ERRORS,
    WRITE_ERRORS,
    error_response,
    error_responses,
    id_parameter,
    page_parameters,
    response_header,
    retry_after_header,
)
from sofiia.lib.pagination import keyset_page, parse_limit
from sofiia.lib.parsers import JSONParser
from sofiia.lib.text import is_storable

# A write within a quota: its 503s.
QUOTA_DEPENDENCY_UNAVAILABLE = error_response(
    503,
    "A dependency is unavailable (`database_unavailable`, or `rate_limit_unavailable` while the quota's "
    "backend is down); retry after `Retry-After` seconds.",
)
CHAT_ID = id_parameter("chat_id", "The chat's id.")
_RATE_LIMIT_HEADERS = [
    response_header(
        "RateLimit-Policy",
        'The send quotas (IETF RateLimit draft), e.g. `"chat";q=30;w=60, "operator";q=120;w=60`.',
        [201, 400, 404, 409, 422, 429, 502, 503, 504],
    ),
    response_header(
        "RateLimit",
        'What is left of each quota, e.g. `"chat";r=12;t=41, "operator";r=100;t=41`; absent while the '
        "rate-limit backend is down.",
        [201, 400, 404, 409, 422, 429, 502, 503, 504],
    ),
]


def parse_search_query(raw: str | None, *, required: bool) -> str:
    """``q``: 1 to 200 characters (``""`` when absent and not required)."""
    if raw is None and not required:
        return ""
    if raw is None or not 1 <= len(raw) <= SEARCH_MAX_LENGTH or not is_storable(raw):
        raise ApplicationError(
            f"q must be 1 to {SEARCH_MAX_LENGTH} characters.",
            code="invalid_input",
            extra={"fields": {"q": ["Invalid."]}},
        )
    return raw


def _query_parameter(*, required: bool, what: str) -> OpenApiParameter:
    return OpenApiParameter(
        "q",
        # No NUL: no stored text holds one (what a database can store), so no search asks for it.
        {"type": "string", "minLength": 1, "maxLength": SEARCH_MAX_LENGTH, "pattern": "^[^\\u0000]*$"},
        OpenApiParameter.QUERY,
        required=required,
        description=f"Text the {what} contains, letter case ignored in every script.",
    )


def _page_response(request: Request, queryset: Any, *, scope: str, ts_field: str, serializer: type) -> Response:
    page = keyset_page(
        queryset,
        scope=scope,
        ts_field=ts_field,
        limit=parse_limit(request.query_params.get("limit")),
        cursor=request.query_params.get("cursor") or None,
    )
    return Response({"items": serializer(page.items, many=True).data, "next_cursor": page.next_cursor})


class ChatListCreateApi(APIView):
    @extend_schema(
        operation_id="chats_list",
        summary="The operator's chats, newest first",
        parameters=[_query_parameter(required=False, what="title"), *page_parameters()],
        responses={200: ChatPageSerializer, **error_responses(*READ_ERRORS)},
        tags=["chats"],
    )
    def get(self, request: Request) -> Response:
        operator = authenticated_operator(request)
        query = parse_search_query(request.query_params.get("q"), required=False)
        return _page_response(
            request,
            chat_list_for_operator(operator=operator, query=query),
            # A cursor belongs to its search: the same position means another row in another.
            scope=f"chats:{operator.pk}:{query}" if query else f"chats:{operator.pk}",
            ts_field="created_at",
            serializer=ChatOutputSerializer,
        )

    @extend_schema(
        operation_id="chats_create",
        summary="Create a chat with an agent on a node",
        parameters=[retry_after_header(429, 503)],
        request=ChatInputSerializer,
        responses={
            201: ChatOutputSerializer,
            **error_responses(*WRITE_ERRORS),
            400: error_response(400, "Invalid input (`invalid_input`, `parse_error`) or `unknown_node`."),
            429: error_response(
                429,
                "Over the operator's chat-creation quota (`rate_limited`, `scope` `chat_create`,"
                " `retry_after` seconds, also in `Retry-After`).",
            ),
            503: QUOTA_DEPENDENCY_UNAVAILABLE,
        },
        tags=["chats"],
    )
    def post(self, request: Request) -> Response:
        serializer = ChatInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        chat = chat_create(operator=authenticated_operator(request), **serializer.validated_data)
        return Response(ChatOutputSerializer(chat).data, status=status.HTTP_201_CREATED)


class ChatDetailApi(APIView):
    @extend_schema(
        operation_id="chats_retrieve",
        summary="One chat",
        parameters=[CHAT_ID],
        responses={200: ChatOutputSerializer, **error_responses(*READ_ERRORS, 404)},
        tags=["chats"],
    )
    def get(self, request: Request, chat_id: int) -> Response:
        chat = chat_get_for_operator(operator=authenticated_operator(request), chat_id=chat_id)
        return Response(ChatOutputSerializer(chat).data)

    @extend_schema(
        operation_id="chats_change",
        summary="Rename, archive or change the settings of a chat",
        description=(
            "Any subset of `title`, `archived` and the settings; an empty body or an unknown field is "
            "`400 invalid_input`. One `chat.change` audit event with the old and new value of each field "
            "that changed (none when nothing did)."
        ),
        parameters=[CHAT_ID, retry_after_header(429, 503)],
        request=ChatChangeInputSerializer,
        responses={
            200: ChatOutputSerializer,
            **error_responses(*WRITE_ERRORS, 404),
            429: error_response(
                429,
                "Over the operator's chat-change quota (`rate_limited`, `scope` `chat_change`,"
                " `retry_after` seconds, also in `Retry-After`).",
            ),
            503: QUOTA_DEPENDENCY_UNAVAILABLE,
        },
        tags=["chats"],
    )
    def patch(self, request: Request, chat_id: int) -> Response:
        operator = authenticated_operator(request)
        chat = chat_get_for_operator(operator=operator, chat_id=chat_id)
        serializer = ChatChangeInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        chat = chat_change(operator=operator, chat=chat, changes=serializer.validated_data)
        return Response(ChatOutputSerializer(chat).data)


class MessageListApi(APIView):
    @extend_schema(
        operation_id="chats_messages_list",
        summary="A chat's messages, newest first",
        parameters=[CHAT_ID, *page_parameters()],
        responses={200: MessagePageSerializer, **error_responses(*READ_ERRORS, 404)},
        tags=["chats"],
    )
    def get(self, request: Request, chat_id: int) -> Response:
        chat = chat_get_for_operator(operator=authenticated_operator(request), chat_id=chat_id)
        return _page_response(
            request,
            message_list_for_chat(chat=chat),
            scope=f"messages:{chat.pk}",
            ts_field="ts",
            serializer=MessageOutputSerializer,
        )


class ChatSendApi(APIView):
    """``POST /api/chats/{id}/send``: the send pipeline (``chats.sending``) behind JSON."""

    @extend_schema(
        operation_id="chats_send",
        summary="Send a message to the chat's agent, exactly once per Idempotency-Key",
        description=(
            "The operator message is stored, relayed to the chat's node and its reply stored. The same key "
            "with the same text again answers the stored result with `Idempotent-Replayed: true` and sends "
            "nothing; with another text it is 422; while the first is still running, 409. A node failure "
            "(502/503/504) keeps the message as `failed`: a retry with the same key delivers that same message."
        ),
        parameters=[
            CHAT_ID,
            OpenApiParameter(
                IDEMPOTENCY_KEY_HEADER,
                {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7e]+$"},
                OpenApiParameter.HEADER,
                required=True,
                description="1 to 255 printable ASCII characters, unique per send (a UUID).",
            ),
            response_header(
                "Idempotent-Replayed", "`true` when the answer is the stored result of an earlier send.", [201]
            ),
            *_RATE_LIMIT_HEADERS,
            retry_after_header(409, 429, 503),
        ],
        request=SendInputSerializer,
        responses={
            201: SendOutputSerializer,
            **error_responses(*WRITE_ERRORS, 404),
            400: error_response(
                400,
                "Invalid input (`invalid_input`, `parse_error`) or a missing or malformed key "
                "(`idempotency_key_required`, `idempotency_key_invalid`).",
            ),
            409: error_response(409, "Another send with this key is still running (`idempotency_key_in_flight`)."),
            422: error_response(422, "The key was used with another text (`idempotency_key_reused`)."),
            429: error_response(429, "Over a send quota (`rate_limited`, with `scope` and `retry_after`)."),
            502: error_response(502, "The node failed (`node_unavailable`); the message is kept.", SendErrorSerializer),
            503: error_response(
                503,
                "The node has too many sends in flight (`node_busy`, the message kept), or a dependency is "
                "unavailable (`database_unavailable`, `rate_limit_unavailable`).",
                SendErrorSerializer,
            ),
            504: error_response(
                504, "The node did not answer in time (`node_timeout`); the message is kept.", SendErrorSerializer
            ),
        },
        tags=["chats"],
    )
    def post(self, request: Request, chat_id: int) -> Response:
        try:
            outcome = send_for_request(request, chat_id)
        except MessageDeliveryFailed as failure:
            failure.extra["operator_message"] = MessageOutputSerializer(failure.message).data
            raise
        return Response(_send_body(outcome), status=status.HTTP_201_CREATED, headers=outcome.headers)


def _send_body(outcome: SendOutcome) -> dict[str, Any]:
    return {
        "operator_message": MessageOutputSerializer(outcome.operator_message).data,
        "reply": MessageOutputSerializer(outcome.reply).data,
    }


class ApiSendSurface:
    """The API's send for the idempotency middleware: the JSON body's ``text`` and the
    ``Idempotency-Key`` header in; refusals and replays out as the view itself answers them."""

    def read(self, request: HttpRequest) -> tuple[str, str | None]:
        try:
            data = Request(request, parsers=[JSONParser()]).data
        except (drf_exceptions.ParseError, drf_exceptions.UnsupportedMediaType) as exc:
            raise ApplicationError(str(exc.detail), code=str(exc.get_codes()), status=exc.status_code) from None
        return send_text_validated(data), request.headers.get(IDEMPOTENCY_KEY_HEADER)

    def refused(self, request: HttpRequest, chat_id: int, refusal: ApplicationError) -> HttpResponse:
        headers = {**refusal.headers, **send_limit_headers(operator=request.user, chat_id=chat_id)}  # type: ignore[arg-type]
        return _json(error_body(refusal.code, refusal.detail, **refusal.extra), status=refusal.status, headers=headers)

    def replayed(self, request: HttpRequest, chat_id: int, outcome: SendOutcome) -> HttpResponse:
        headers = {**send_limit_headers(operator=request.user, chat_id=chat_id), REPLAYED_HEADER: "true"}  # type: ignore[arg-type]
        return _json(_send_body(outcome), status=status.HTTP_201_CREATED, headers=headers)


def _json(data: Any, *, status: int, headers: Mapping[str, str]) -> HttpResponse:
    # Rendered as DRF renders the view's own answers: a replay is byte for byte the same body.
    response = HttpResponse(JSONRenderer().render(data), status=status, content_type="application/json")
    for name, value in headers.items():
        response[name] = value
    return response


API_SEND = ApiSendSurface()


class ChatSearchApi(APIView):
    """``GET /api/search``: the operator's messages (and replies) containing a text."""

    @extend_schema(
        operation_id="search",
        summary="The operator's messages containing a text, newest first",
        description=(
            "Messages and replies of the operator's own chats whose text contains `q`, letter case ignored "
            "in every script (Ukrainian included), each with its chat; keyset-paged like every listing."
        ),
        parameters=[_query_parameter(required=True, what="message text"), *page_parameters()],
        responses={200: SearchPageSerializer, **error_responses(*READ_ERRORS)},
        tags=["chats"],
    )
    def get(self, request: Request) -> Response:
        operator = authenticated_operator(request)
        query = parse_search_query(request.query_params.get("q"), required=True)
        page = keyset_page(
            message_search_for_operator(operator=operator, query=query),
            scope=f"search:{operator.pk}:{query}",
            ts_field="ts",
            limit=parse_limit(request.query_params.get("limit")),
            cursor=request.query_params.get("cursor") or None,
        )
        items = [
            {"chat": ChatOutputSerializer(message.chat).data, "message": MessageOutputSerializer(message).data}
            for message in page.items
        ]
        return Response({"items": items, "next_cursor": page.next_cursor})


class _AnyFormatNegotiation(DefaultContentNegotiation):
    """The export's ``format`` is its document's format, not DRF's renderer override: the
    view answers with its own response, and errors in JSON."""

    def select_renderer(self, request: Request, renderers: Any, format_suffix: str | None = None) -> Any:
        return renderers[0], renderers[0].media_type


class ChatExportApi(APIView):
    """``GET /api/chats/{id}/export?format=json|md``: the chat and every message, streamed."""

    content_negotiation_class = _AnyFormatNegotiation

    @extend_schema(
        operation_id="chats_export",
        summary="Download a chat with every message (JSON or Markdown)",
        description=(
            'An attachment: `json` is `{"chat": {…}, "messages": [{…}, …]}` (messages oldest first), `md` a '
            "Markdown transcript. Streamed; one `chat.export` audit event."
        ),
        parameters=[
            CHAT_ID,
            OpenApiParameter(
                "format", {"type": "string", "enum": list(EXPORT_FORMATS), "default": "json"}, OpenApiParameter.QUERY
            ),
            response_header("Content-Disposition", '`attachment; filename="chat-<id>.<format>"`.', [200]),
        ],
        responses={
            (200, "application/json"): ChatExportSerializer,
            (200, "text/markdown"): OpenApiTypes.STR,
            **error_responses(*READ_ERRORS, 404),
        },
        tags=["chats"],
    )
    def get(self, request: Request, chat_id: int) -> HttpResponseBase:
        operator = authenticated_operator(request)
        chat = chat_get_for_operator(operator=operator, chat_id=chat_id)
        fmt = request.query_params.get("format", "json")
        if fmt not in EXPORT_FORMATS:
            raise ApplicationError(f"format must be one of: {', '.join(EXPORT_FORMATS)}.", code="invalid_input")
        export = chat_export(operator=operator, chat=chat, fmt=fmt)
        return StreamingHttpResponse(
            (chunk.encode("utf-8") for chunk in export.chunks),
            content_type=export.content_type,
            headers={
                "Content-Disposition": f'attachment; filename="{export.filename}"',
                "Cache-Control": "no-store",
            },
        )
