"""Serializers shared by several API views (the chat and message shapes of the contract)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from chats.models import Chat, Message


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers and booleans instead of turning them into text."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class ChatOutputSerializer(serializers.ModelSerializer[Chat]):
    class Meta:
        model = Chat
        fields = ["id", "title", "agent", "node", "created_at"]


class MessageOutputSerializer(serializers.ModelSerializer[Message]):
    chat_id = serializers.IntegerField()

    class Meta:
        model = Message
        fields = ["id", "chat_id", "role", "text", "ts", "node", "status"]
