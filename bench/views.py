"""Benchmark-only endpoints, served by ``bench.wsgi`` beside the real ones.

``bare_send`` does what a send must do at the least — authenticate the token, find the
operator's chat, store the operator message with what it asks (the chat's settings and the
earlier exchanges), call the node with that conversation through the same client, store the
reply rendered and mark the message delivered, answer the same JSON — with none of the
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

from chats.conversation import infer_body, infer_request_snapshot
from chats.markdown import reply_html
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
    snapshot = infer_request_snapshot(chat=chat, message=Message(chat=chat, ts=now))
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
        infer_request=snapshot,
    )
    body = infer_body(message=message, snapshot=snapshot)
    db_connections_release()
    result = infer(node=chat.node, agent=chat.agent, body=body)
    html = reply_html(result.response)
    with transaction.atomic():
        reply = Message.objects.create(
            chat=chat,
            role=Message.Role.AGENT,
            text=result.response,
            html=html,
            ts=clock_now(),
            node=chat.node,
            status=Message.Status.DELIVERED,
            reply_to=message,
            model=result.model,
            backend=result.backend,
            tokens_used=result.tokens_used,
            latency_ms=result.latency_ms,
        )
        Message.objects.filter(pk=message.pk).update(status=Message.Status.DELIVERED)
    message.status = Message.Status.DELIVERED
    answer = {"operator_message": MessageOutputSerializer(message).data, "reply": MessageOutputSerializer(reply).data}
    return JsonResponse(answer, status=201)


class MessagesByOffset(APIView):
    def get(self, request: Request, chat_id: int) -> Response:
        chat = chat_get_for_operator(operator=authenticated_operator(request), chat_id=chat_id)
        offset = int(request.query_params.get("offset") or 0)
        limit = parse_limit(request.query_params.get("limit"))
        rows = list(message_list_for_chat(chat=chat).order_by("-ts", "-id")[offset : offset + limit])
        return Response({"items": MessageOutputSerializer(rows, many=True).data})
