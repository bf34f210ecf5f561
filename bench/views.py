"""Benchmark-only endpoints, served by ``bench.wsgi`` beside the real ones.

``bare_send`` does what a send must do at the least — authenticate the token, find the
operator's chat, store the operator message, call the node through the same client, store
the reply and mark the message delivered, answer the same JSON — with none of the
guarantees: no idempotency cache, no rate limits, no audit chain, no middleware at all
(``bench.wsgi`` serves it without any), so no access log and no metrics. Row 1 of the
benchmark compares the real send with it.

``MessagesByOffset`` is the messages page read by ``OFFSET``, through the same stack as the
real listing: row 3 compares keyset pages with it.
"""

from __future__ import annotations

import json
import uuid

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chats.models import Chat, Message
from chats.selectors import chat_get_for_operator, message_list_for_chat
from chats.serializers import MessageOutputSerializer
from nodes.infer import infer
from operators.auth import authenticated_operator, token_user
from sofiia.lib.clock import clock_now
from sofiia.lib.db import db_connections_release
from sofiia.lib.pagination import parse_limit


@csrf_exempt
def bare_send(request: HttpRequest, chat_id: int) -> JsonResponse:
    if request.method != "POST":
        return JsonResponse({"error": "method_not_allowed"}, status=405)
    operator = token_user(request.headers.get("Authorization", "").removeprefix("Bearer "))
    chat = Chat.objects.get(pk=chat_id, owner=operator)
    text = json.loads(request.body)["text"]
    now = clock_now()
    message = Message.objects.create(
        chat=chat,
        role=Message.Role.OPERATOR,
        text=text,
        ts=now,
        node=chat.node,
        status=Message.Status.PENDING,
        operator=operator,
        idempotency_key=request.headers.get("Idempotency-Key") or uuid.uuid4().hex,
        attempts=1,
        delivery_started_at=now,
    )
    db_connections_release()
    result = infer(node=chat.node, agent=chat.agent, body={"prompt": text})
    with transaction.atomic():
        reply = Message.objects.create(
            chat=chat,
            role=Message.Role.AGENT,
            text=result.response,
            ts=clock_now(),
            node=chat.node,
            status=Message.Status.DELIVERED,
            reply_to=message,
        )
        Message.objects.filter(pk=message.pk).update(status=Message.Status.DELIVERED)
    message.status = Message.Status.DELIVERED
    body = {"operator_message": MessageOutputSerializer(message).data, "reply": MessageOutputSerializer(reply).data}
    return JsonResponse(body, status=201)


class MessagesByOffset(APIView):
    def get(self, request: Request, chat_id: int) -> Response:
        chat = chat_get_for_operator(operator=authenticated_operator(request), chat_id=chat_id)
        offset = int(request.query_params.get("offset") or 0)
        limit = parse_limit(request.query_params.get("limit"))
        rows = list(message_list_for_chat(chat=chat).order_by("-ts", "-id")[offset : offset + limit])
        return Response({"items": MessageOutputSerializer(rows, many=True).data})
