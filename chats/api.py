from __future__ import annotations

from typing import Any

from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chats.errors import MessageDeliveryFailed
from chats.selectors import chat_get_for_operator, chat_list_for_operator, message_list_for_chat
from chats.sending import IDEMPOTENCY_KEY_HEADER, SendRequest, send_pipeline
from chats.serializers import ChatInputSerializer, ChatOutputSerializer, MessageOutputSerializer
from chats.services import chat_create
from operators.auth import authenticated_operator
from sofiia.lib.pagination import keyset_page, parse_limit


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
    def get(self, request: Request) -> Response:
        operator = authenticated_operator(request)
        return _page_response(
            request,
            chat_list_for_operator(operator=operator),
            scope=f"chats:{operator.pk}",
            ts_field="created_at",
            serializer=ChatOutputSerializer,
        )

    def post(self, request: Request) -> Response:
        serializer = ChatInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        chat = chat_create(operator=authenticated_operator(request), **serializer.validated_data)
        return Response(ChatOutputSerializer(chat).data, status=status.HTTP_201_CREATED)


class ChatDetailApi(APIView):
    def get(self, request: Request, chat_id: int) -> Response:
        chat = chat_get_for_operator(operator=authenticated_operator(request), chat_id=chat_id)
        return Response(ChatOutputSerializer(chat).data)


class MessageListApi(APIView):
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

    def post(self, request: Request, chat_id: int) -> Response:
        body = request.data if isinstance(request.data, dict) else {}
        send = SendRequest(
            operator=authenticated_operator(request),
            chat_id=chat_id,
            text=body.get("text"),
            idempotency_key=request.headers.get(IDEMPOTENCY_KEY_HEADER),
        )
        try:
            outcome = send_pipeline(send)
        except MessageDeliveryFailed as failure:
            failure.extra["operator_message"] = MessageOutputSerializer(failure.message).data
            raise
        body = {
            "operator_message": MessageOutputSerializer(outcome.operator_message).data,
            "reply": MessageOutputSerializer(outcome.reply).data,
        }
        return Response(body, status=status.HTTP_201_CREATED, headers=outcome.headers)
