from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.contrib.auth.models import User
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    TextField,
    Value,
    When,
)
from django.db.models.functions import Length, Substr, TruncDate

from chats.errors import ChatNotFound
from chats.idempotency import delivery_lease_seconds
from chats.markdown import PLAIN_SHOWN_MAX_CHARS
from chats.models import Chat, Message
from chats.search import search_filter_messages, search_fold
from sofiia.lib.pagination import Position, keyset_after

CHAT_PREVIEW_LENGTH = 120
# The list's order needs last activity to the second, not to the message: a burst of sends
# into one chat then writes its row once a second instead of queueing every send's
# transaction (and its pooled connection) behind that row's lock (``chats.services``).
LAST_ACTIVITY_RESOLUTION = timedelta(seconds=1)


def chat_get_for_operator(*, operator: User, chat_id: int) -> Chat:
    """The operator's chat; another operator's chat is reported as missing, never forbidden."""
    try:
        return Chat.objects.get(pk=chat_id, owner=operator)
    except Chat.DoesNotExist:
        raise ChatNotFound(f"Chat {chat_id} not found.") from None


def chat_list_for_operator(*, operator: User, query: str = "") -> QuerySet[Chat]:
    """The operator's chats; with ``query``, those whose title contains it, letter case
    ignored in every script (``chats.search``). Served by ``chat_owner_created_idx``: only
    the operator's own chats are looked at."""
    chats = Chat.objects.filter(owner=operator)
    if query:
        chats = chats.filter(title_search__contains=search_fold(query))
    return chats


def message_search_for_operator(*, operator: User, query: str) -> QuerySet[Message]:
    """The operator's messages and their replies whose text contains ``query``, letter case
    ignored in every script, with their chats; the caller orders and pages them (``(ts, id)``
    newest first). See ``chats.search`` for the index that serves it."""
    messages = Message.objects.filter(chat__owner=operator).select_related("chat")
    return search_filter_messages(messages, query=query)


EXPORT_BATCH = 500


def message_iter_for_export(*, chat: Chat, batch: int = EXPORT_BATCH) -> Iterator[Message]:
    """Every message of the chat, oldest first, read in keyset batches of ``batch`` (no
    transaction or server-side cursor held while the caller streams them out)."""
    messages = Message.objects.filter(chat=chat).defer("search_text", "html", "infer_request")
    page = list(messages.order_by("ts", "id")[:batch])
    while page:
        yield from page
        if len(page) < batch:
            return
        last = page[-1]
        page = list(keyset_after(messages, Position(last.ts, last.pk), order="asc")[:batch])


def message_list_for_chat(*, chat: Chat) -> QuerySet[Message]:
    return Message.objects.filter(chat=chat)


def _as_shown(messages: QuerySet[Message]) -> QuerySet[Message]:
    """What a console page reads of each message, whatever the size of the replies: an operator's
    text; a reply's stored HTML, or, for a reply stored without it, the start of its text that
    the page shows (``text_shown``) and its full length (``text_length``). A reply's whole text
    is never read: ten replies of a megabyte would otherwise cost the page ten megabytes."""
    return messages.defer("text").annotate(
        text_shown=Case(
            When(role=Message.Role.OPERATOR, then=F("text")),
            When(html="", then=Substr("text", 1, PLAIN_SHOWN_MAX_CHARS)),
            default=Value(""),
            output_field=TextField(),
        ),
        text_length=Case(
            When(Q(role=Message.Role.AGENT, html=""), then=Length("text")),
            default=Value(0),
            output_field=IntegerField(),
        ),
    )


def message_list_for_console(*, chat: Chat) -> QuerySet[Message]:
    """The chat's messages as the console's pages show them (see :func:`_as_shown`)."""
    return _as_shown(message_list_for_chat(chat=chat))


def chat_list_for_console(*, operator: User, query: str = "", archived: bool = False) -> QuerySet[Chat]:
    """The console's list: the operator's chats (archived ones, or the others), titles
    containing ``query``, each with a preview of its newest message and whether it has
    operator messages still pending or failed. Ordered by the caller (last activity)."""
    chats = Chat.objects.filter(owner=operator, archived_at__isnull=not archived)
    if query:
        chats = chats.filter(title_search__contains=search_fold(query))
    newest = Message.objects.filter(chat=OuterRef("pk")).order_by("-ts", "-id")
    # Each a probe of message_chat_status_idx; only operator messages are ever undelivered.
    operator_messages = Message.objects.filter(chat=OuterRef("pk"), role=Message.Role.OPERATOR)
    return chats.annotate(
        preview=Substr(Subquery(newest.values("text")[:1]), 1, CHAT_PREVIEW_LENGTH),
        preview_role=Subquery(newest.values("role")[:1]),
        has_failed=Exists(operator_messages.filter(status=Message.Status.FAILED)),
        has_pending=Exists(operator_messages.filter(status=Message.Status.PENDING)),
    )


def message_retryable(message: Message, *, now: datetime) -> bool:
    """Whether a retry with the message's key would attempt delivery again: it failed, or it
    is still ``pending`` after its delivery lease ran out (its worker is gone)."""
    if message.role != Message.Role.OPERATOR or message.idempotency_key is None:
        return False
    if message.status == Message.Status.FAILED:
        return True
    if message.status != Message.Status.PENDING or message.delivery_started_at is None:
        return False
    return message.delivery_started_at < now - timedelta(seconds=delivery_lease_seconds())


def message_list_by_ids(*, chat: Chat, ids: list[int]) -> list[Message]:
    return list(_as_shown(Message.objects.filter(chat=chat, pk__in=ids)).order_by("ts", "id"))


def message_list_after(*, chat: Chat, after: Position | None, limit: int) -> list[Message]:
    """Up to ``limit`` of the chat's messages strictly after ``after`` (from the first one when
    ``None``), oldest first: the next page of what a console polling forward has not seen."""
    messages = _as_shown(Message.objects.filter(chat=chat))
    ordered = keyset_after(messages, after, order="asc") if after else messages.order_by("ts", "id")
    return list(ordered[:limit])


def message_ids_between(*, chat: Chat, since: datetime, until: Position, limit: int) -> list[int]:
    """The ids of the chat's messages from ``since`` up to ``until`` (included), newest first,
    at most ``limit``: what a polling console checks it has, for messages committed late."""
    messages = Message.objects.filter(chat=chat, ts__gte=since, ts__lte=until.ts).order_by("-ts", "-id")
    return list(messages.values_list("pk", flat=True)[:limit])


def chat_list_for_updates(*, operator: User, limit: int) -> list[Chat]:
    """The operator's ``limit`` most recently active chats (archived ones left out), as the
    console's list shows them (:func:`chat_list_for_console`): what its live list refreshes."""
    chats = chat_list_for_console(operator=operator).order_by("-last_activity_at", "-id")
    return list(chats[:limit])


def chat_unread_counts(*, chats: list[Chat], cap: int) -> dict[int, int]:
    """For each chat, how many replies were stored after its owner last read it (every reply
    of a chat never opened), counted up to ``cap``. Only chats active since they were read
    are counted, each a probe of ``message_chat_ts_idx`` that reads at most ``cap`` rows."""
    counts = {chat.pk: 0 for chat in chats}
    for chat in chats:
        # Last activity moves a second at a time: a reply stored within that second of the
        # chat's last move is later than it says.
        if chat.last_read_at is not None and chat.last_activity_at + LAST_ACTIVITY_RESOLUTION <= chat.last_read_at:
            continue
        replies = Message.objects.filter(chat=chat, role=Message.Role.AGENT).order_by()
        if chat.last_read_at is not None:
            replies = replies.filter(ts__gt=chat.last_read_at)
        counts[chat.pk] = replies[:cap].count()
    return counts


@dataclass(frozen=True)
class MessagesAround:
    """A page of a chat's messages around one of them, oldest first."""

    items: list[Message]
    found: Message
    # The oldest message shown, when older ones exist (where the "older" listing goes on).
    oldest_before: Message | None
    has_newer: bool


def message_list_around(*, chat: Chat, message_id: int, before: int, after: int) -> MessagesAround | None:
    """Up to ``before`` messages older than the chat's message ``message_id``, that message
    and up to ``after`` newer ones (``None`` when the chat has no such message)."""
    messages = _as_shown(Message.objects.filter(chat=chat))
    found = messages.filter(pk=message_id).first()
    if found is None:
        return None
    position = Position(found.ts, found.pk)
    older = list(keyset_after(messages, position, order="desc")[: before + 1])
    newer = list(keyset_after(messages, position, order="asc")[: after + 1])
    return MessagesAround(
        items=[*reversed(older[:before]), found, *newer[:after]],
        found=found,
        oldest_before=older[before - 1] if len(older) > before and before > 0 else None,
        has_newer=len(newer) > after,
    )


def message_last_operator_id(*, chat: Chat) -> int | None:
    """The id of the operator's newest message in the chat (the one "Ask again" repeats)."""
    newest = Message.objects.filter(chat=chat, role=Message.Role.OPERATOR).order_by("-ts", "-id")
    return newest.values_list("pk", flat=True).first()


def message_operator_text(*, chat: Chat, message_id: int) -> str | None:
    """The text of the chat's operator message ``message_id`` (to edit and send again)."""
    found = Message.objects.filter(chat=chat, pk=message_id, role=Message.Role.OPERATOR)
    return found.values_list("text", flat=True).first()


SIDEBAR_CHATS = 30


def chat_list_recent(*, operator: User, limit: int = SIDEBAR_CHATS) -> list[Chat]:
    """The operator's most recently active chats that are not archived (the chat page's list)."""
    chats = Chat.objects.filter(owner=operator, archived_at__isnull=True).order_by("-last_activity_at", "-id")
    return list(chats.only("id", "title", "agent", "node", "last_activity_at")[:limit])


USAGE_MAX_DAYS = 366


@dataclass(frozen=True)
class UsageRow:
    day: date
    operator: str
    node: str
    model: str
    sends: int
    tokens: int


def usage_by_day(*, since: date, until: date) -> list[UsageRow]:
    """Delivered sends and the tokens their replies used, per day (UTC), operator, node and
    model, for the days ``since`` to ``until`` inclusive (at most :data:`USAGE_MAX_DAYS`),
    newest day first. Counted from the replies (one per delivered send), read through
    ``message_role_ts_idx``; a reply whose node named no model counts under ``""``."""
    start = datetime.combine(since, time.min, tzinfo=UTC)
    end = datetime.combine(until + timedelta(days=1), time.min, tzinfo=UTC)
    rows = (
        Message.objects.filter(ts__gte=start, ts__lt=end, role=Message.Role.AGENT)
        .annotate(day=TruncDate("ts", tzinfo=UTC))
        .values("day", "chat__owner__username", "node", "model")
        .annotate(sends=Count("id"), tokens=Sum("tokens_used"))
        .order_by("-day", "chat__owner__username", "node", "model")
    )
    return [
        UsageRow(
            day=row["day"],
            operator=row["chat__owner__username"],
            node=row["node"],
            model=row["model"] or "",
            sends=row["sends"],
            tokens=row["tokens"] or 0,
        )
        for row in rows
    ]
