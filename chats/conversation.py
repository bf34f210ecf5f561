"""What a node is asked for an operator message: the chat's settings and the conversation
before it (CONTRACT "What a node is asked").

A send works in two steps, so that a retry — or an auditor, long after — asks exactly what
the first attempt asked:

1. :func:`infer_request_snapshot` — at the first delivery attempt — records the chat's
   settings then and the *ids* of the earlier exchanges sent as context; the send path keeps
   it in ``Message.infer_request`` and reuses it on every retry.
2. :func:`infer_body` builds the body from the message, the snapshot and the stored texts of
   the messages the snapshot names, whatever the chat's settings are now.

:func:`infer_body_digest` is the SHA-256 of the body's canonical bytes
(``nodes.infer.infer_body_bytes``), which the ``message.send`` audit event keeps and
``manage.py audit_prompt`` checks.

The body, in this key order (the digest depends on it)::

    {"prompt": str, "model": str|null, "max_tokens": int|null, "temperature": float|null,
     "system_prompt": str|null, "messages": [{"role": "user"|"assistant", "content": str}, ...]}

``prompt`` is the new text alone when there is no earlier exchange; otherwise the turns
flattened, each turn ``"User: <text>"`` or ``"Assistant: <text>"``, joined by a blank line
(``"\\n\\n"``), the new text last (:data:`PROMPT_USER`, :data:`PROMPT_ASSISTANT`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.db.models.functions import Length

from chats.models import Chat, Message
from nodes.infer import infer_body_bytes

PROMPT_USER = "User: "
PROMPT_ASSISTANT = "Assistant: "
PROMPT_TURN_SEPARATOR = "\n\n"


class ContextUnavailable(Exception):
    """A snapshot names a context message that is not (or no longer) in the message's chat."""


def infer_request_snapshot(*, chat: Chat, message: Message) -> dict[str, Any]:
    """What the first delivery attempt of the operator ``message`` (stored, or about to be)
    asks besides its text:
    the chat's settings and ``context``, ``[[operator_message_id, reply_id], ...]`` oldest
    first.

    The context is up to ``chat.context_turns`` exchanges — an operator message that was
    ``delivered``, with its reply — strictly before ``message`` in ``(ts, id)`` order; failed
    and pending messages never count. Their texts together stay within
    ``SOFIIA_CONTEXT_MAX_CHARS``: the newest exchanges are kept, and the first one (going
    back) that does not fit ends the context, so it is always the oldest that are left out,
    each exchange whole. The new text does not count against the budget and is never cut.

    One query, walking ``message_chat_ts_idx`` backwards from ``message`` and stopping after
    ``context_turns`` exchanges (replies and failed messages are stepped over on the way).
    """
    context: list[list[int]] = []
    turns = chat.context_turns
    if turns > 0:
        # Only the sizes of the texts: infer_body reads the texts of the exchanges kept.
        earlier = (
            Message.objects.filter(chat_id=chat.pk, role=Message.Role.OPERATOR, status=Message.Status.DELIVERED)
            .filter(_before(message))
            .filter(reply__isnull=False)
            .order_by("-ts", "-id")
            .annotate(size=Length("text") + Length("reply__text"))
            .values_list("pk", "reply__pk", "size")[:turns]
        )
        budget = settings.SOFIIA_CONTEXT_MAX_CHARS
        for question_id, reply_id, size in earlier:
            if size > budget:
                break
            budget -= size
            context.append([question_id, reply_id])
        context.reverse()
    return {
        "system_prompt": chat.system_prompt,
        "model": chat.model,
        "temperature": chat.temperature,
        "max_tokens": chat.max_tokens,
        "context": context,
    }


def _before(message: Message) -> Q:
    if message.pk is None:
        # A message about to be stored: every exchange already delivered came before it (its
        # operator message was stored, and answered, earlier).
        return Q(ts__lte=message.ts)
    return Q(ts__lte=message.ts) & (Q(ts__lt=message.ts) | Q(ts=message.ts, id__lt=message.pk))


def _context_texts(*, message: Message, context: list[list[int]]) -> list[tuple[str, str]]:
    ids = [int(message_id) for pair in context for message_id in pair]
    texts = dict(Message.objects.filter(chat_id=message.chat_id, pk__in=ids).values_list("pk", "text"))
    missing = [message_id for message_id in ids if message_id not in texts]
    if missing:
        raise ContextUnavailable(
            f"Context message(s) {', '.join(map(str, missing))} of message {message.pk} are not in its chat."
        )
    return [(texts[int(question)], texts[int(answer)]) for question, answer in context]


def infer_body(*, message: Message, snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """The exact infer body for the operator ``message`` under ``snapshot`` (from
    :func:`infer_request_snapshot`, or ``Message.infer_request``): the same body every time
    it is built from the same stored messages. Raises :class:`ContextUnavailable` when a
    context message is gone."""
    exchanges = _context_texts(message=message, context=list(snapshot.get("context") or []))
    turns: list[dict[str, str]] = []
    for question, answer in exchanges:
        turns.append({"role": "user", "content": question})
        turns.append({"role": "assistant", "content": answer})
    turns.append({"role": "user", "content": message.text})
    if exchanges:
        prompt = PROMPT_TURN_SEPARATOR.join(
            (PROMPT_USER if turn["role"] == "user" else PROMPT_ASSISTANT) + turn["content"] for turn in turns
        )
    else:
        prompt = message.text
    temperature = snapshot.get("temperature")
    max_tokens = snapshot.get("max_tokens")
    return {
        "prompt": prompt,
        "model": snapshot.get("model") or None,
        "max_tokens": int(max_tokens) if max_tokens is not None else None,
        "temperature": float(temperature) if temperature is not None else None,
        "system_prompt": snapshot.get("system_prompt") or None,
        "messages": turns,
    }


def infer_body_digest(body: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the bytes a node is sent for ``body``."""
    return hashlib.sha256(infer_body_bytes(body)).hexdigest()
