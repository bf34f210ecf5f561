"""Template filters of the console's pages."""

from __future__ import annotations

from datetime import UTC, datetime

from django import template
from django.utils.safestring import SafeString

from chats.markdown import render_markdown
from chats.models import Message
from chats.selectors import message_retryable
from sofiia.lib.clock import clock_now

register = template.Library()


@register.filter
def markdown(text: str) -> SafeString:
    return render_markdown(text)


@register.filter
def retryable(message: Message) -> bool:
    return message_retryable(message, now=clock_now())


@register.filter
def iso_utc(moment: datetime) -> str:
    """The instant as ISO 8601 UTC (what the console's script turns into the operator's zone)."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@register.filter
def order_key(message: Message) -> str:
    """The message's place in the transcript, ``(ts, id)``, as a string that sorts the same way."""
    micros = int(message.ts.timestamp() * 1_000_000)
    return f"{micros:017d}-{message.pk:019d}"
