"""The operator web console: session login, chats, messages and sending.

Every page works without script (forms post, the server redirects). The console's script
(``static/console/console.js``) makes the chat live on top of the same pages: it sends through
the JSON API, and reads new and older messages, rendered here, from :func:`chat_updates` and
:func:`chat_older`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.models import User
from django.contrib.auth.views import redirect_to_login
from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from chats.errors import ChatArchived, ChatNotFound, IdempotencyKeyInFlight, MessageDeliveryFailed, RateLimited
from chats.failures import failure_reason
from chats.forms import ChatArchiveForm, ChatCreateForm, ChatRenameForm, ChatSettingsForm, SendForm
from chats.markdown import one_line
from chats.models import MESSAGE_TEXT_MAX_LENGTH, Chat, Message
from chats.search import SEARCH_MAX_LENGTH
from chats.selectors import (
    chat_get_for_operator,
    chat_list_for_console,
    chat_list_for_updates,
    chat_list_recent,
    chat_unread_counts,
    message_ids_between,
    message_last_operator_id,
    message_list_after,
    message_list_around,
    message_list_by_ids,
    message_list_for_console,
    message_operator_text,
    message_search_for_operator,
)
from chats.sending import send_for_request
from chats.serializers import send_text_validated
from chats.services import SendOutcome, chat_archive, chat_change, chat_create, chat_mark_read, chat_rename
from chats.templatetags.console import iso_utc, preview
from nodes.registry import NodeStatus, node_statuses
from operators.auth import authenticated_operator, operator_required, operator_role_required
from sofiia.lib.clock import clock_now
from sofiia.lib.errors import ApplicationError
from sofiia.lib.pagination import Position, decode_cursor, encode_cursor, keyset_page
from sofiia.lib.text import is_storable

PAGE_SIZE = 50
# A chat opened at a found message shows this many messages before it and after it.
AROUND_BEFORE = 20
AROUND_AFTER = 20
# The chat list's search shows this many of the messages found (the search page has them all).
LIST_MESSAGE_HITS = 5
# A search result shows this many characters before the text found and after it.
SNIPPET_BEFORE = 60
SNIPPET_AFTER = 140
# A message is stored with its timestamp a moment before its transaction commits, so a
# poll can see a newer message before an older one appears. Each poll sends the ids of the
# messages this far before its cursor, and the script asks for any it misses by id: nothing
# committed late is ever missed, and no message is rendered twice.
POLL_LOOKBACK = timedelta(seconds=30)
POLL_LIMIT = 200
# The ids of the messages just before a poll's cursor it sends back, at most.
RECENT_IDS_LIMIT = 500
# Unread replies are counted up to this many per chat (the list shows "99+").
UNREAD_CAP = 100
WATCH_LIMIT = 50
# A refused draft kept for the form's next rendering; a paste of any size the server
# accepted (1 MiB) is kept up to this many characters.
DRAFT_MAX_LENGTH = 100_000
# An anonymous send's draft (an expired session) travels in a signed cookie instead, this
# small and this short-lived: the server stores nothing for a client that is not logged in.
DRAFT_COOKIE_NAME = "sofiia_draft"
DRAFT_COOKIE_SALT = "sofiia.console.draft"
DRAFT_COOKIE_MAX_CHARS = 2_000
DRAFT_COOKIE_MAX_BYTES = 3_800
DRAFT_COOKIE_MAX_AGE = 15 * 60

ViewFunc = Callable[..., HttpResponse]


def _chat_url(chat_id: int) -> str:
    return reverse("console:chat-detail", args=[chat_id])


def _draft_session_key(chat_id: int) -> str:
    return f"console:draft:{chat_id}"


def _draft_keep(request: HttpRequest, chat_id: int) -> None:
    """Keep a refused send's text and key for the composer's next rendering (no script).

    Only for an operator who is logged in: their session exists already. An anonymous
    request stores nothing on the server (see :func:`_draft_cookie_set`)."""
    text, key = request.POST.get("text"), request.POST.get("idempotency_key")
    if text and request.user.is_authenticated:
        request.session[_draft_session_key(chat_id)] = {"text": text[:DRAFT_MAX_LENGTH], "key": (key or "")[:255]}


def _draft_cookie_path(chat_id: int) -> str:
    return _chat_url(chat_id)


def _draft_cookie_value(*, chat_id: int, text: str, key: str) -> str:
    """The signed cookie value of a draft, shortened until it fits ``DRAFT_COOKIE_MAX_BYTES``."""
    text = text[:DRAFT_COOKIE_MAX_CHARS]
    while True:
        payload = {"c": chat_id, "t": text, "k": key[:255], "at": int(clock_now().timestamp())}
        value = signing.dumps(payload, salt=DRAFT_COOKIE_SALT, compress=True)
        if len(value) <= DRAFT_COOKIE_MAX_BYTES or not text:
            return value
        text = text[: len(text) * 4 // 5]


def _draft_cookie_set(request: HttpRequest, response: HttpResponse, chat_id: int) -> None:
    """Keep an anonymous send's draft in the browser, signed, until the login brings it back.

    Nothing is written on the server: anyone can post to a chat's send URL with the login
    page's CSRF token, and a session row per post would let them fill the database. The
    cookie is bounded, readable only by this server, sent only to this chat's pages and
    short-lived."""
    text, key = request.POST.get("text"), request.POST.get("idempotency_key")
    if not text:
        return
    response.set_cookie(
        DRAFT_COOKIE_NAME,
        _draft_cookie_value(chat_id=chat_id, text=text, key=key or ""),
        max_age=DRAFT_COOKIE_MAX_AGE,
        path=_draft_cookie_path(chat_id),
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )


def _draft_take(request: HttpRequest, chat_id: int) -> tuple[dict[str, str] | None, bool]:
    """The draft kept for this chat's composer (session first, then the cookie), and whether
    a draft cookie came with the request (it is then deleted)."""
    kept = request.session.pop(_draft_session_key(chat_id), None)
    raw = request.COOKIES.get(DRAFT_COOKIE_NAME)
    if raw is None:
        return kept, False
    try:
        payload = signing.loads(raw, salt=DRAFT_COOKIE_SALT, max_age=DRAFT_COOKIE_MAX_AGE)
    except signing.BadSignature:
        return kept, True
    if kept is None and isinstance(payload, dict) and payload.get("c") == chat_id:
        text, key, at = payload.get("t"), payload.get("k"), payload.get("at")
        fresh = isinstance(at, int) and clock_now().timestamp() - at <= DRAFT_COOKIE_MAX_AGE
        if fresh and isinstance(text, str) and isinstance(key, str):
            kept = {"text": text[:DRAFT_COOKIE_MAX_CHARS], "key": key[:255]}
    return kept, True


def login_required_back_to_chat(view: ViewFunc) -> ViewFunc:
    """``login_required`` for the console's POST-only actions on a chat: an expired session
    logs in and comes back to the chat page (a GET of the action's URL would be a 405), and
    a send's draft comes back with it, in a cookie."""

    @wraps(view)
    def wrapper(request: HttpRequest, chat_id: int, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            response = redirect_to_login(_chat_url(chat_id))
            _draft_cookie_set(request, response, chat_id)
            return response
        return view(request, chat_id, *args, **kwargs)

    return wrapper


def _search_text(request: HttpRequest) -> str:
    """The console's search box (``q``): trimmed to what a search takes, and refused with a 400
    when it holds a character no stored text can (a NUL would fail the query itself)."""
    query = request.GET.get("q", "").strip()[:SEARCH_MAX_LENGTH]
    if not is_storable(query):
        raise ApplicationError("NUL in the search text.", code="invalid_search")
    return query


def _bad_request(request: HttpRequest, refusal: ApplicationError) -> HttpResponse:
    """The console's 400 page, explaining the refusal in the page's language (the API's
    English detail would be all that is not translated on it)."""
    return render(request, "400.html", {"detail": _bad_request_text(refusal)}, status=400)


def _bad_request_text(refusal: ApplicationError) -> str:
    if refusal.code == "invalid_cursor":
        return _("The link to this page is damaged or belongs to another listing: start again from the newest page.")
    if refusal.code == "invalid_search":
        return _("The search text cannot contain a NUL character.")
    if refusal.code == "invalid_input":
        return _("The address names no message: a message id is a number.")
    return _("The address is not one the console makes.")


def _node_status(chat: Chat) -> NodeStatus | None:
    return next((node for node in node_statuses() if node.name == chat.node), None)


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
    archived = request.GET.get("archived") == "1"
    try:
        query = _search_text(request)
        page = keyset_page(
            chat_list_for_console(operator=operator, query=query, archived=archived),
            scope=f"console-chats:{operator.pk}:{int(archived)}:{query}",
            ts_field="last_activity_at",
            limit=PAGE_SIZE,
            cursor=request.GET.get("cursor") or None,
        )
    except ApplicationError as refusal:
        return _bad_request(request, refusal)
    try:
        hits, more_hits = _message_hits(operator, query, cursor=None, limit=LIST_MESSAGE_HITS)
    except ApplicationError as refusal:
        return _bad_request(request, refusal)
    nodes = node_statuses()
    context = {
        "form": form,
        # Folded on a narrow screen, unless it is all there is to do or it has errors to show.
        "new_chat_open": form.is_bound or not (page.items or query or archived or request.GET.get("cursor")),
        "hits": hits,
        "more_hits": bool(more_hits),
        "page": page,
        "nodes": nodes,
        "agent_suggestions": sorted({agent for node in nodes for agent in node.agents}),
        "query": query,
        "archived": archived,
        "paged": bool(request.GET.get("cursor")),
        "strings": _script_strings(),
    }
    return render(request, "console/chat_list.html", context)


@operator_required
@require_GET
def chat_detail(request: HttpRequest, chat_id: int) -> HttpResponse:
    """The chat: its newest messages (or older ones from ``cursor``, or those around the
    message ``at``), the composer (prefilled with the operator's message ``edit``), the chat's
    settings and the operator's recent chats beside it."""
    chat = _chat_or_404(request, chat_id)
    return _chat_page(request, chat)


def _chat_page(
    request: HttpRequest, chat: Chat, *, settings_form: ChatSettingsForm | None = None, status: int = 200
) -> HttpResponse:
    operator = authenticated_operator(request)
    cursor = request.GET.get("cursor") or None
    try:
        at = _message_id_param(request, "at")
        edit = _message_id_param(request, "edit")
        if at is not None:
            around = message_list_around(chat=chat, message_id=at, before=AROUND_BEFORE, after=AROUND_AFTER)
            if around is None:
                raise Http404("No such message in this chat")
            items, found_id = around.items, around.found.pk
            oldest = around.oldest_before
            next_cursor = encode_cursor(_older_scope(chat), Position(oldest.ts, oldest.pk), "desc") if oldest else None
        else:
            page = keyset_page(
                message_list_for_console(chat=chat), scope=_older_scope(chat), limit=PAGE_SIZE, cursor=cursor
            )
            items, found_id, next_cursor = list(reversed(page.items)), None, page.next_cursor
    except ApplicationError as refusal:
        return _bad_request(request, refusal)
    live = cursor is None and at is None
    draft, draft_cookie = _draft_take(request, chat.pk)
    initial: dict[str, str] | None = None
    if draft:
        initial = {"text": draft["text"], "idempotency_key": draft["key"]}
    elif edit is not None:
        text = message_operator_text(chat=chat, message_id=edit)
        if text is not None:
            initial = {"text": text, "idempotency_key": uuid.uuid4().hex}
    node = _node_status(chat)
    form = settings_form or ChatSettingsForm(chat=chat)
    context = {
        "chat": chat,
        "archived": chat.archived_at is not None,
        "messages_page": items,
        "next_cursor": next_cursor,
        # Only the newest page is live: it polls forward from its newest message.
        "live": live,
        "poll_cursor": _poll_cursor(chat, items[-1]) if items and live else "",
        "found_id": found_id,
        "last_operator_id": message_last_operator_id(chat=chat),
        # Every "Ask again" on the page sends as a new message, with a key of its own.
        "again_key": uuid.uuid4().hex,
        "form": SendForm(initial=initial),
        "settings_form": form,
        "settings_open": form.is_bound,
        "model_suggestions": node.models if node else (),
        "node": node,
        "recent_chats": chat_list_recent(operator=operator),
        "max_length": MESSAGE_TEXT_MAX_LENGTH,
        "strings": _script_strings(),
    }
    response = render(request, "console/chat_detail.html", context, status=status)
    if draft_cookie:
        response.delete_cookie(DRAFT_COOKIE_NAME, path=_draft_cookie_path(chat.pk), samesite="Lax")
    return response


def _message_id_param(request: HttpRequest, name: str) -> int | None:
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return None
    if not (raw.isdigit() and len(raw) <= 18):
        raise ApplicationError(f"{name}: a message id.", code="invalid_input")
    return int(raw)


@login_required_back_to_chat
@operator_role_required
@require_POST
def chat_settings_view(request: HttpRequest, chat_id: int) -> HttpResponse:
    """The settings panel's form: saved through ``chat_change`` (one ``chat.change`` event);
    a field out of its bounds is shown next to it, a refusal above the page."""
    chat = _chat_or_404(request, chat_id)
    form = ChatSettingsForm(request.POST, chat=chat)
    if not form.is_valid():
        return _chat_page(request, chat, settings_form=form, status=400)
    try:
        chat_change(operator=authenticated_operator(request), chat=chat, changes=form.changes())
    except ApplicationError as refusal:
        messages.error(request, _change_refusal_text(refusal))
        return _chat_page(request, chat, settings_form=form, status=refusal.status)
    messages.success(request, _("Chat settings saved."))
    return redirect(_chat_url(chat_id) + "#settings")


@operator_required
@require_GET
def search_view(request: HttpRequest) -> HttpResponse:
    """Messages (the operator's and the replies) containing ``q``, newest first, keyset-paged;
    each opens its chat at that message."""
    operator = authenticated_operator(request)
    try:
        query = _search_text(request)
        hits, next_cursor = _message_hits(operator, query, cursor=request.GET.get("cursor") or None, limit=PAGE_SIZE)
    except ApplicationError as refusal:
        return _bad_request(request, refusal)
    context = {"query": query, "hits": hits, "next_cursor": next_cursor, "paged": bool(request.GET.get("cursor"))}
    return render(request, "console/search.html", context)


def _message_hits(operator: User, query: str, *, cursor: str | None, limit: int) -> tuple[list[SearchHit], str | None]:
    if not query:
        return [], None
    page = keyset_page(
        message_search_for_operator(operator=operator, query=query).defer("html", "infer_request", "search_text"),
        scope=f"console-search:{operator.pk}:{query}",
        limit=limit,
        cursor=cursor,
    )
    return [SearchHit.of(message, query) for message in page.items], page.next_cursor


@dataclass(frozen=True)
class SearchHit:
    """A found message as a result shows it: where the text was found, with some around it."""

    message: Message
    before: str
    match: str
    after: str

    @classmethod
    def of(cls, message: Message, query: str) -> SearchHit:
        text = message.text
        start = text.casefold().find(query.casefold()) if len(text.casefold()) == len(text) else -1
        if start < 0:
            return cls(message, "", "", one_line(text, limit=SNIPPET_AFTER, cut=len(text) > SNIPPET_AFTER))
        end = start + len(query)
        return cls(
            message,
            ("…" if start > SNIPPET_BEFORE else "") + text[max(0, start - SNIPPET_BEFORE) : start],
            text[start:end],
            text[end : end + SNIPPET_AFTER] + ("…" if len(text) > end + SNIPPET_AFTER else ""),
        )


@operator_required
@require_GET
def chat_older(request: HttpRequest, chat_id: int) -> HttpResponse:
    """The page of messages before ``cursor``, rendered, for the script to put above the others."""
    chat = _chat_or_404(request, chat_id)
    try:
        page = keyset_page(
            message_list_for_console(chat=chat),
            scope=_older_scope(chat),
            limit=PAGE_SIZE,
            cursor=request.GET.get("cursor") or None,
        )
    except ApplicationError as refusal:
        return JsonResponse({"error": refusal.code, "detail": refusal.detail}, status=400)
    html = _render_messages(request, chat, list(reversed(page.items)))
    return JsonResponse({"html": html, "next_cursor": page.next_cursor})


@operator_required
@require_GET
def chat_updates(request: HttpRequest, chat_id: int) -> HttpResponse:
    """What a live chat page has not shown yet: the next messages after its cursor (``more``
    when there are others after them: the page asks again at once), the current state of the
    messages it ``watch``es (pending or failed ones, and any it misses), the ids of the
    messages just before its cursor (see ``POLL_LOOKBACK``) and the chat's node status."""
    chat = _chat_or_404(request, chat_id)
    cursor = request.GET.get("cursor") or None
    try:
        since = decode_cursor(_poll_scope(chat), cursor, "asc") if cursor else None
        watch = _watched_ids(request.GET.get("watch", ""))
    except ApplicationError as refusal:
        return JsonResponse({"error": refusal.code, "detail": refusal.detail}, status=400)
    after = message_list_after(chat=chat, after=since, limit=POLL_LIMIT)
    seen = {message.pk for message in after}
    watched = message_list_by_ids(chat=chat, ids=[pk for pk in watch if pk not in seen]) if watch else []
    recent = (
        message_ids_between(chat=chat, since=since.ts - POLL_LOOKBACK, until=since, limit=RECENT_IDS_LIMIT)
        if since
        else []
    )
    node = _node_status(chat)
    body = {
        "html": _render_messages(request, chat, watched + after),
        "cursor": _poll_cursor(chat, after[-1]) if after else cursor,
        "more": len(after) == POLL_LIMIT,
        "recent": recent,
        "node_status": node.status if node else "unknown",
    }
    return JsonResponse(body)


@operator_required
@require_POST
def chat_read(request: HttpRequest, chat_id: int) -> HttpResponse:
    """The open chat page was seen up to its poll ``cursor`` (its newest message): the
    replies up to there no longer count as unread. Without a cursor (an empty chat), up to now."""
    chat = _chat_or_404(request, chat_id)
    cursor = request.POST.get("cursor") or None
    try:
        upto = decode_cursor(_poll_scope(chat), cursor, "asc").ts if cursor else clock_now()
    except ApplicationError as refusal:
        return JsonResponse({"error": refusal.code, "detail": refusal.detail}, status=400)
    chat_mark_read(chat=chat, upto=min(upto, clock_now()))
    return HttpResponse(status=204)


@operator_required
@require_GET
def chat_list_updates(request: HttpRequest) -> HttpResponse:
    """The live list's state: the operator's most recently active chats, each with its title,
    badges, preview (plain text) and unread replies, and the unread replies of them all."""
    chats = chat_list_for_updates(operator=authenticated_operator(request), limit=PAGE_SIZE)
    unread = chat_unread_counts(chats=chats, cap=UNREAD_CAP)
    you = _("You")
    items = [
        {
            "id": chat.pk,
            "title": chat.title,
            "url": _chat_url(chat.pk),
            "agent": chat.agent,
            "node": chat.node,
            "activity": iso_utc(chat.last_activity_at),
            "pending": bool(chat.has_pending),  # type: ignore[attr-defined]
            "failed": bool(chat.has_failed),  # type: ignore[attr-defined]
            "preview": _list_preview(chat, you),
            "unread": unread[chat.pk],
        }
        for chat in chats
    ]
    return JsonResponse({"chats": items, "unread": sum(unread.values())})


def _list_preview(chat: Chat, you: str) -> str:
    """The list's preview line, as ``chat_list.html`` renders it (plain text)."""
    text, role = getattr(chat, "preview", None), getattr(chat, "preview_role", None)
    if not text or not role:
        return ""
    shown = preview(text, role)
    return f"{you}: {shown}" if role == Message.Role.OPERATOR else shown


@login_required_back_to_chat
@operator_role_required
@require_POST
def chat_send(request: HttpRequest, chat_id: int) -> HttpResponse:
    """The form's send: the same pipeline as the API's, behind the same idempotency
    middleware (``console_urls``). A refusal is shown above the composer, and the draft is
    kept unless the message was stored."""
    try:
        send_for_request(request, chat_id)
    except ChatNotFound:
        raise Http404("Chat not found") from None
    except ApplicationError as refusal:
        return CONSOLE_SEND.refused(request, chat_id, refusal)
    return redirect(_chat_url(chat_id) + "#composer")


class ConsoleSendSurface:
    """The console form's send for the idempotency middleware: the form's ``text`` and
    ``idempotency_key`` in; a refusal shown above the composer with the draft kept, a replay
    back to the chat, where the message already stands."""

    def read(self, request: HttpRequest) -> tuple[str, str | None]:
        text = request.POST.get("text")
        # Browsers submit a textarea's line breaks as CRLF; the script and the API send LF.
        # The same message must read the same whichever way it was sent or retried.
        data = {} if text is None else {"text": text.replace("\r\n", "\n")}
        return send_text_validated(data), request.POST.get("idempotency_key")

    def refused(self, request: HttpRequest, chat_id: int, refusal: ApplicationError) -> HttpResponse:
        messages.error(request, _refusal_text(refusal))
        if not isinstance(refusal, MessageDeliveryFailed):
            _draft_keep(request, chat_id)
        return redirect(_chat_url(chat_id) + "#composer")

    def replayed(self, request: HttpRequest, chat_id: int, outcome: SendOutcome) -> HttpResponse:
        return redirect(_chat_url(chat_id) + "#composer")


CONSOLE_SEND = ConsoleSendSurface()


@login_required_back_to_chat
@operator_role_required
@require_POST
def chat_rename_view(request: HttpRequest, chat_id: int) -> HttpResponse:
    chat = _chat_or_404(request, chat_id)
    form = ChatRenameForm(request.POST)
    if form.is_valid():
        try:
            chat_rename(operator=authenticated_operator(request), chat=chat, title=form.cleaned_data["title"])
        except ApplicationError as refusal:
            messages.error(request, _change_refusal_text(refusal))
        else:
            messages.success(request, _("Chat renamed."))
    else:
        messages.error(request, _("The title must be 1 to 200 characters."))
    return redirect(_chat_url(chat_id))


@login_required_back_to_chat
@operator_role_required
@require_POST
def chat_archive_view(request: HttpRequest, chat_id: int) -> HttpResponse:
    chat = _chat_or_404(request, chat_id)
    form = ChatArchiveForm(request.POST)
    archived = form.is_valid() and form.cleaned_data["archived"]
    try:
        chat_archive(operator=authenticated_operator(request), chat=chat, archived=archived)
    except ApplicationError as refusal:
        messages.error(request, _change_refusal_text(refusal))
        return redirect(_chat_url(chat_id))
    if archived:
        messages.success(request, _("Chat “%(title)s” archived.") % {"title": chat.title})
        return redirect("console:chat-list")
    messages.success(request, _("Chat restored to the list."))
    return redirect(_chat_url(chat_id))


class ConsoleLogoutView(auth_views.LogoutView):
    """Logout that also tells the browser to drop what it cached of the console, so Back
    shows nothing of the transcript (the pages are ``no-store`` as well)."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().post(request, *args, **kwargs)
        response["Clear-Site-Data"] = '"cache"'
        return response


def _refusal_text(refusal: ApplicationError) -> str:
    if isinstance(refusal, MessageDeliveryFailed):
        return failure_reason(refusal.error.failure)
    if isinstance(refusal, ChatArchived):
        return _("This chat is archived: restore it to send to it. Your draft is kept.")
    if isinstance(refusal, RateLimited):
        seconds = refusal.extra.get("retry_after", 0)
        return _("Too many sends. You can send again in %(seconds)s s; your draft is kept.") % {"seconds": seconds}
    if isinstance(refusal, IdempotencyKeyInFlight):
        return _("This message is still being delivered; its answer will appear here.")
    # The pipeline's own words, as the API gives them: one text per refusal on both surfaces.
    return _("The message was refused: %(detail)s Your draft is kept.") % {"detail": refusal.detail}


def _change_refusal_text(refusal: ApplicationError) -> str:
    if isinstance(refusal, RateLimited):
        seconds = refusal.extra.get("retry_after", 0)
        return _("Too many changes to chats. You can change this chat again in %(seconds)s s.") % {"seconds": seconds}
    return _("The chat was not changed: %(detail)s") % {"detail": refusal.detail}


def _chat_or_404(request: HttpRequest, chat_id: int) -> Chat:
    try:
        return chat_get_for_operator(operator=authenticated_operator(request), chat_id=chat_id)
    except ApplicationError:
        raise Http404("Chat not found") from None


def _older_scope(chat: Chat) -> str:
    # The API's scope for the same listing: its cursors and the console's are interchangeable.
    return f"messages:{chat.pk}"


def _poll_scope(chat: Chat) -> str:
    return f"console-poll:{chat.pk}"


def _poll_cursor(chat: Chat, newest: Message) -> str:
    return encode_cursor(_poll_scope(chat), Position(newest.ts, newest.pk), "asc")


def _watched_ids(raw: str) -> list[int]:
    parts = [part for part in raw.split(",") if part]
    if len(parts) > WATCH_LIMIT or not all(part.isdigit() and len(part) <= 18 for part in parts):
        raise ApplicationError(f"watch: at most {WATCH_LIMIT} message ids, comma-separated.", code="invalid_watch")
    return [int(part) for part in parts]


def _render_messages(request: HttpRequest, chat: Chat, items: list[Message]) -> str:
    return render_to_string("console/_messages.html", {"chat": chat, "messages_page": items}, request)


def _script_strings() -> dict[str, str]:
    """The console's own words the script shows, in the page's language."""
    return {
        "send": _("Send"),
        "sending": _("Sending…"),
        "copy": _("Copy"),
        "copied": _("Copied"),
        "loading": _("Loading…"),
        "you": _("You"),
        "pending": _("pending"),
        "up": _("up"),
        "down": _("down"),
        "unknown": _("unknown"),
        "rate_limited": _("Too many sends. You can send again in {seconds} s; your draft is kept."),
        "too_long": _("The message is {length} characters long; the limit is {limit}. Your draft is kept."),
        "refused": _("The message was refused: {detail}"),
        "node_failed": _("The node did not deliver the message. It is kept: press Retry when the node is back."),
        "session_expired": _("Your session has expired. Log in again: your draft is kept for this chat."),
        "log_in": _("Log in"),
        "forbidden": _("The server refused the send (403). Reload the page: your draft is kept."),
        "access_refused": _("Your account may no longer use the console (403). Ask an administrator."),
        "network": _("No answer from the server. Your draft is kept: press Send to try again, it is sent once."),
        "key_reused": _("An earlier version of this message was already sent. Press Send to send this one."),
        "node_down": _("Node {node} was down at the last check. Press Send again to send anyway."),
        "unavailable": _("The console cannot send right now. Your draft is kept: try again shortly."),
        "server_error": _("The server failed ({status}). Your draft is kept: try again shortly."),
        "older_failed": _("Older messages could not be loaded."),
        "count": _("{length} / {limit} characters"),
        "blank": _("The message is only spaces or line breaks: nothing was sent."),
        "in_flight": _("This message is still being delivered; its answer will appear here."),
        "network_retry": _("No answer from the server. The message is kept and sent again shortly, once."),
        "thinking": _("thinking… {seconds} s"),
        "unread": _("{count} unread"),
        "failed": _("failed"),
        "notify": _("Notify me of replies"),
        "notify_on": _("Notifications on"),
        "notify_title": _("Reply in “{title}”"),
        "shortcuts": _("Keyboard shortcuts"),
        "key_search": _("Search chats"),
        "key_new": _("New chat"),
        "key_escape": _("Leave the field you are typing in"),
        "key_help": _("Show these shortcuts"),
        "close": _("Close"),
    }
