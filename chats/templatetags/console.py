"""Template filters of the console's pages."""

from __future__ import annotations

from datetime import UTC, datetime

from django import template

from chats.failures import failure_reason as failure_sentence
from chats.markdown import PLAIN_SHOWN_MAX_CHARS, one_line, reply_hidden_chars, reply_preview
from chats.models import Message
from chats.selectors import CHAT_PREVIEW_LENGTH, message_retryable
from operators.roles import is_operator
from sofiia.lib.clock import clock_now

register = template.Library()


# The list shows this much of a chat's newest message, as one line of plain text.
PREVIEW_SHOWN_MAX_CHARS = 100


@register.filter
def text_shown(message: Message) -> str:
    """What a page shows of the message's text: an operator's whole, the start of a reply
    stored without HTML (the console's selectors read just that much of it)."""
    shown = getattr(message, "text_shown", None)
    if shown is not None:
        return str(shown)
    return message.text if message.role == Message.Role.OPERATOR else message.text[:PLAIN_SHOWN_MAX_CHARS]


@register.filter
def text_hidden(message: Message) -> int:
    """How many characters of a reply the page leaves out: its stored HTML says so, or, for a
    reply stored without HTML, its length does."""
    if message.html:
        return reply_hidden_chars(message.html)
    length = getattr(message, "text_length", None)
    return max(0, (len(message.text) if length is None else int(length)) - PLAIN_SHOWN_MAX_CHARS)


@register.filter
def preview(text: str, role: str) -> str:
    """A chat's newest message for the list (the start the list's query read of it): a reply
    without its Markdown, an operator's text as typed; either on one line and bounded."""
    cut = len(text) >= CHAT_PREVIEW_LENGTH
    if role == Message.Role.AGENT:
        return reply_preview(text, limit=PREVIEW_SHOWN_MAX_CHARS, cut=cut)
    return one_line(text, limit=PREVIEW_SHOWN_MAX_CHARS, cut=cut)


@register.filter
def retryable(message: Message) -> bool:
    return message_retryable(message, now=clock_now())


@register.filter
def iso_utc(moment: datetime) -> str:
    """The instant as ISO 8601 UTC to the millisecond: what the console's script shows in the
    operator's zone, and the order in which it places messages (with their ids)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@register.filter
def failure_reason(message: Message) -> str:
    """Why the message was not delivered, in the operator's words."""
    return failure_sentence(message.failure)


@register.filter
def has_operator_role(user: object) -> bool:
    return is_operator(user)
