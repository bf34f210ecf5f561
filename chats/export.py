"""A chat and all its messages as one document (``GET /api/chats/{id}/export``), produced
piece by piece so a chat of any length is streamed, never held in memory whole.

- ``json``: ``{"chat": {…}, "messages": [{…}, …]}`` — the API's own chat and message bodies,
  messages oldest first.
- ``md``: a Markdown transcript — the chat's title and settings, then one section per
  message (``### <role> · <ts> · <status>``) with its text as written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from chats.models import Chat, Message
from chats.selectors import message_iter_for_export
from chats.serializers import ChatOutputSerializer, MessageOutputSerializer

EXPORT_FORMATS = ("json", "md")


@dataclass(frozen=True)
class Export:
    chunks: Iterator[str]
    content_type: str
    filename: str


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _json_chunks(chat: Chat) -> Iterator[str]:
    yield '{"chat":' + _json_text(ChatOutputSerializer(chat).data) + ',"messages":['
    separator = ""
    for message in message_iter_for_export(chat=chat):
        yield separator + _json_text(MessageOutputSerializer(message).data)
        separator = ","
    yield "]}\n"


def _md_line(text: str) -> str:
    # A title or a setting on one line: its line breaks would start new Markdown blocks.
    return " ".join(text.split())


def _md_chunks(chat: Chat) -> Iterator[str]:
    data = ChatOutputSerializer(chat).data
    yield f"# {_md_line(chat.title)}\n\n"
    for field in ("id", "agent", "node", "created_at", "model", "temperature", "max_tokens", "context_turns"):
        yield f"- {field}: {data[field] if data[field] is not None else '—'}\n"
    yield f"- archived: {'yes' if data['archived'] else 'no'}\n"
    if chat.system_prompt:
        yield "\n## System prompt\n\n" + chat.system_prompt + "\n"
    yield "\n## Messages\n"
    for message in message_iter_for_export(chat=chat):
        yield _md_message(message)


def _md_message(message: Message) -> str:
    ts = MessageOutputSerializer(message).data["ts"]
    heading = f"\n### {message.role} · {ts} · {message.status}"
    if message.role == Message.Role.AGENT and message.model:
        heading += f" · {_md_line(message.model)}"
    return f"{heading}\n\n{message.text}\n"


def export_render(*, chat: Chat, fmt: str) -> Export:
    """The export of ``chat`` in ``fmt`` (one of :data:`EXPORT_FORMATS`)."""
    if fmt == "json":
        return Export(_json_chunks(chat), "application/json; charset=utf-8", f"chat-{chat.pk}.json")
    if fmt == "md":
        return Export(_md_chunks(chat), "text/markdown; charset=utf-8", f"chat-{chat.pk}.md")
    raise ValueError(f"unknown export format {fmt!r}")
