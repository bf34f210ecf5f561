"""The operator web console: session login, chats, messages and sending."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from chats.errors import MessageDeliveryFailed
from chats.forms import ChatCreateForm, SendForm
from chats.models import Chat
from chats.nodes import node_statuses
from chats.selectors import chat_get_for_operator, chat_list_for_operator, message_list_for_chat
from chats.services import chat_create, message_send
from ratelimit.services import ratelimit_hit
from sofiia.lib.auth import authenticated_operator
from sofiia.lib.errors import ApplicationError
from sofiia.lib.pagination import keyset_page

PAGE_SIZE = 50


@login_required
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


@login_required
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


@login_required
@require_POST
def chat_send(request: HttpRequest, chat_id: int) -> HttpResponse:
    operator = authenticated_operator(request)
    chat = _chat_or_404(request, chat_id)
    form = SendForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, str(error))
        return redirect("console:chat-detail", chat_id=chat.pk)
    limit = ratelimit_hit(operator=operator, chat_id=chat.pk)
    if not limit.allowed:
        if limit.backend_failed:
            messages.error(request, "Rate limits cannot be checked right now; retry shortly.")
        else:
            messages.error(request, f"Too many sends for this {limit.blocked_scope}; retry in {limit.retry_after} s.")
        return redirect("console:chat-detail", chat_id=chat.pk)
    try:
        message_send(
            operator=operator,
            chat=chat,
            text=form.cleaned_data["text"],
            idempotency_key=form.cleaned_data["idempotency_key"],
        )
    except MessageDeliveryFailed as failure:
        messages.error(request, f"{failure.detail} Your message is kept; send it again to retry.")
    except ApplicationError as exc:
        messages.error(request, exc.detail)
    return redirect("console:chat-detail", chat_id=chat.pk)


def _chat_or_404(request: HttpRequest, chat_id: int) -> Chat:
    try:
        return chat_get_for_operator(operator=authenticated_operator(request), chat_id=chat_id)
    except ApplicationError:
        raise Http404("Chat not found") from None
