"""The operator web console: session login, chats, messages and sending."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from chats.errors import ChatNotFound, MessageDeliveryFailed
from chats.forms import ChatCreateForm, SendForm
from chats.models import Chat
from chats.selectors import chat_get_for_operator, chat_list_for_operator, message_list_for_chat
from chats.sending import SendRequest, send_pipeline
from chats.services import chat_create
from nodes.registry import node_statuses
from operators.auth import authenticated_operator, operator_required
from sofiia.lib.errors import ApplicationError
from sofiia.lib.pagination import keyset_page

PAGE_SIZE = 50


@operator_required
@require_http_methods(["GET", "POST"])
def chat_list(request: HttpRequest) -> HttpResponse:
    operator = authenticated_operator(request)
    form = ChatCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            chat = chat_create(operator=operator, **form.cleaned_data)
        except ApplicationError as exc:
            form.add_error("node", exc.detail)
        else:
            return redirect("console:chat-detail", chat_id=chat.pk)
    page = keyset_page(
        chat_list_for_operator(operator=operator),
        scope=f"chats:{operator.pk}",
        ts_field="created_at",
        limit=PAGE_SIZE,
        cursor=request.GET.get("cursor") or None,
    )
    context = {"form": form, "page": page, "nodes": node_statuses()}
    return render(request, "console/chat_list.html", context)


@operator_required
@require_http_methods(["GET"])
def chat_detail(request: HttpRequest, chat_id: int) -> HttpResponse:
    chat = _chat_or_404(request, chat_id)
    page = keyset_page(
        message_list_for_chat(chat=chat),
        scope=f"messages:{chat.pk}",
        limit=PAGE_SIZE,
        cursor=request.GET.get("cursor") or None,
    )
    context = {
        "chat": chat,
        "messages_page": list(reversed(page.items)),
        "next_cursor": page.next_cursor,
        "form": SendForm(),
    }
    return render(request, "console/chat_detail.html", context)


@operator_required
@require_POST
def chat_send(request: HttpRequest, chat_id: int) -> HttpResponse:
    """The form's send: the same pipeline as the API's, a refusal shown above the form."""
    send = SendRequest(
        operator=authenticated_operator(request),
        chat_id=chat_id,
        text=request.POST.get("text"),
        idempotency_key=request.POST.get("idempotency_key"),
    )
    try:
        send_pipeline(send)
    except ChatNotFound:
        raise Http404("Chat not found") from None
    except ApplicationError as refusal:
        messages.error(request, _refusal_text(refusal))
    return redirect("console:chat-detail", chat_id=chat_id)


def _refusal_text(refusal: ApplicationError) -> str:
    if isinstance(refusal, MessageDeliveryFailed):
        return f"{refusal.detail} Your message is kept; send it again to retry."
    return refusal.detail


def _chat_or_404(request: HttpRequest, chat_id: int) -> Chat:
    try:
        return chat_get_for_operator(operator=authenticated_operator(request), chat_id=chat_id)
    except ApplicationError:
        raise Http404("Chat not found") from None
