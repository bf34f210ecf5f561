"""The API's chat and message shapes (the contract's), and the input of a new chat."""

from __future__ import annotations

from typing import Any

from django.db import models
from rest_framework import serializers

from chats.models import MESSAGE_TEXT_MAX_LENGTH, Chat, Message
from sofiia.lib.errors import validation_error
from sofiia.lib.fields import StrictCharField, not_blank
from sofiia.lib.openapi import ErrorSerializer


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


class ChatPageSerializer(serializers.Serializer[Any]):
    items = ChatOutputSerializer(many=True)
    next_cursor = serializers.CharField(
        allow_null=True, help_text="Pass it as `cursor` for the next page; null at the end."
    )


class MessagePageSerializer(serializers.Serializer[Any]):
    items = MessageOutputSerializer(many=True)
    next_cursor = serializers.CharField(
        allow_null=True, help_text="Pass it as `cursor` for the next page; null at the end."
    )


class SendInputSerializer(serializers.Serializer[Any]):
    """The body of a send: the one definition of a valid send, for the API, the console's
    form (both through :func:`send_text_validated`) and the OpenAPI description."""

    text = StrictCharField(
        min_length=1,
        max_length=MESSAGE_TEXT_MAX_LENGTH,
        # Kept as typed (the agent sees the operator's own spacing), but never blank.
        trim_whitespace=False,
        validators=[not_blank],
        help_text="Not blank or only whitespace; no NUL or lone surrogate characters.",
    )


def send_text_validated(data: Any) -> str:
    """The text of a send body (a mapping with ``text``), or ``invalid_input`` naming the problem."""
    serializer = SendInputSerializer(data=data)
    if not serializer.is_valid():
        raise validation_error(serializer.errors)
    text: str = serializer.validated_data["text"]
    return text


class SendOutputSerializer(serializers.Serializer[Any]):
    operator_message = MessageOutputSerializer()
    reply = MessageOutputSerializer()


class SendErrorSerializer(ErrorSerializer):
    """A send that reached the node step: the operator's message is kept (``failed``), and
    a retry with the same key delivers it."""

    operator_message = MessageOutputSerializer(required=False)
