from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chats.errors import MessageDeliveryFailed
from chats.idempotency import IDEMPOTENCY_KEY_HEADER, REPLAYED_HEADER
from chats.selectors import chat_get_for_operator, chat_list_for_operator, message_list_for_chat
from chats.sending import send_for_request, send_limit_headers
from chats.serializers import (
    ChatInputSerializer,
    ChatOutputSerializer,
    ChatPageSerializer,
    MessageOutputSerializer,
    MessagePageSerializer,
    SendErrorSerializer,
    SendInputSerializer,
    SendOutputSerializer,
    send_text_validated,
)
from chats.services import SendOutcome, chat_create
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
        parameters=page_parameters(),
        responses={200: ChatPageSerializer, **error_responses(*READ_ERRORS)},
        tags=["chats"],
    )
    def get(self, request: Request) -> Response:
        operator = authenticated_operator(request)
        return _page_response(
            request,
            chat_list_for_operator(operator=operator),
            scope=f"chats:{operator.pk}",
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
            503: error_response(
                503,
                "A dependency is unavailable (`database_unavailable`, or `rate_limit_unavailable`"
                " while the quota's backend is down); retry after `Retry-After` seconds.",
            ),
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
