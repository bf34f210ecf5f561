"""The API's chat and message shapes (the contract's), and the input of a new chat."""

from __future__ import annotations

from typing import Any

from django.db import models
from rest_framework import serializers

from chats.models import Chat, Message
from sofiia.lib.fields import StrictCharField


class ChatInputSerializer(serializers.ModelSerializer[Chat]):
    """``POST /api/chats``: lengths and the agent-name rule come from the model."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: StrictCharField,
    }

    class Meta:
        model = Chat
        fields = ["title", "agent", "node"]
        extra_kwargs: dict[str, dict[str, Any]] = {"node": {"required": False, "allow_null": True}}


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
