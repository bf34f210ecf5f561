from __future__ import annotations

from typing import Any

from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chats.bulkhead import max_in_flight, node_bulkhead
from chats.errors import MessageDeliveryFailed
from chats.idempotency import REPLAYED_HEADER
from chats.idempotency_keys import idempotency_key_from
from chats.nodes import node_statuses
from chats.selectors import chat_get_for_operator, chat_list_for_operator, message_list_for_chat
from chats.serializers import ChatOutputSerializer, MessageOutputSerializer, StrictCharField
from chats.services import chat_create, message_send
from chats.validators import validate_agent_name
from sofiia.lib.auth import authenticated_operator
from sofiia.lib.errors import error_body
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
    class InputSerializer(serializers.Serializer[dict[str, Any]]):
        title = StrictCharField(min_length=1, max_length=200)
        agent = StrictCharField(min_length=1, max_length=64, validators=[validate_agent_name])
        node = StrictCharField(required=False, allow_null=True, min_length=1, max_length=64)

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
        serializer = self.InputSerializer(data=request.data)
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
    class InputSerializer(serializers.Serializer[dict[str, Any]]):
        text = StrictCharField(min_length=1, max_length=16000, trim_whitespace=False)

    def post(self, request: Request, chat_id: int) -> Response:
        operator = authenticated_operator(request)
        chat = chat_get_for_operator(operator=operator, chat_id=chat_id)
        idempotency_key = idempotency_key_from(request._request)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            result = message_send(
                operator=operator,
                chat=chat,
                text=serializer.validated_data["text"],
                idempotency_key=idempotency_key,
            )
        except MessageDeliveryFailed as failure:
            body = error_body(
                failure.code, failure.detail, operator_message=MessageOutputSerializer(failure.message).data
            )
            return Response(body, status=failure.status, headers=failure.headers)
        response = Response(
            {
                "operator_message": MessageOutputSerializer(result.operator_message).data,
                "reply": MessageOutputSerializer(result.reply).data,
            },
            status=status.HTTP_201_CREATED,
        )
        if result.replayed:
            response[REPLAYED_HEADER] = "true"
        return response


class NodeListApi(APIView):
    def get(self, request: Request) -> Response:
        bulkhead, limit = node_bulkhead(), max_in_flight()
        return Response(
            [
                {
                    "name": s.name,
                    "status": s.status,
                    "latency_ms": s.latency_ms,
                    "in_flight": bulkhead.in_flight(s.name),
                    "max_in_flight": limit,
                }
                for s in node_statuses()
            ]
        )
