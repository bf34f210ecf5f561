from __future__ import annotations

from django.contrib.auth.models import User
from django.db.models import QuerySet

from chats.errors import ChatNotFound
from chats.models import Chat, Message


def chat_get_for_operator(*, operator: User, chat_id: int) -> Chat:
    """The operator's chat; another operator's chat is reported as missing, never forbidden."""
    try:
        return Chat.objects.get(pk=chat_id, owner=operator)
    except Chat.DoesNotExist:
        raise ChatNotFound(f"Chat {chat_id} not found.") from None


def chat_list_for_operator(*, operator: User) -> QuerySet[Chat]:
    return Chat.objects.filter(owner=operator)


def message_list_for_chat(*, chat: Chat) -> QuerySet[Message]:
    return Message.objects.filter(chat=chat)
