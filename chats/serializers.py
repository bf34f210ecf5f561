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


# Output shapes are declared field by field rather than as ModelSerializers: a
# ModelSerializer maps every model field again for each instance, which cost more than
# half of a send's serialization.


class ChatOutputSerializer(serializers.Serializer[Chat]):
    id = serializers.IntegerField()
    title = serializers.CharField()
    agent = serializers.CharField()
    node = serializers.CharField()
    created_at = serializers.DateTimeField()


class MessageOutputSerializer(serializers.Serializer[Message]):
    id = serializers.IntegerField()
    chat_id = serializers.IntegerField()
    role = serializers.ChoiceField(choices=Message.Role.choices)
    text = serializers.CharField()
    ts = serializers.DateTimeField()
    node = serializers.CharField()
    status = serializers.ChoiceField(choices=Message.Status.choices)
