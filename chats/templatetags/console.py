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
    """The instant as ISO 8601 UTC to the millisecond: what the console's script shows in the
    operator's zone, and the order in which it places messages (with their ids)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
