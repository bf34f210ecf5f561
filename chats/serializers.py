"""The API's chat and message shapes (the contract's), and the input of a new or changed chat."""

from __future__ import annotations

import math
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from chats.models import (
    AGENT_NAME_MAX_LENGTH,
    CHAT_TITLE_MAX_LENGTH,
    CONTEXT_TURNS_MAX,
    MAX_TOKENS_MAX,
    MESSAGE_TEXT_MAX_LENGTH,
    MODEL_NAME_MAX_LENGTH,
    SYSTEM_PROMPT_MAX_LENGTH,
    TEMPERATURE_MAX,
    Chat,
    Message,
)
from chats.validators import validate_agent_name
from sofiia.lib.errors import validation_error
from sofiia.lib.fields import StrictCharField, not_blank
from sofiia.lib.openapi import ErrorSerializer


class StrictFloatField(serializers.FloatField):
    """A JSON number (not a string, a boolean or a non-finite value)."""

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, (int, float)) or not math.isfinite(data):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer (not a string, a boolean or a number with a fraction). ``33.0`` is one:
    JSON Schema, and so the OpenAPI description, counts a number with no fraction as an integer."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, float) and math.isfinite(data) and data.is_integer():
            data = int(data)
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """``true`` or ``false``, not ``"yes"``, ``1`` or ``"on"``."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


def _optional_model(value: str | None) -> str | None:
    return value or None


class ChatSettingsFields(serializers.Serializer[Any]):
    """A chat's settings as the API takes them (CONTRACT "Chat settings"); ``model`` ``""``
    means no model, like ``null``."""

    # An unknown field is refused (the OpenAPI description says so: additionalProperties false).
    refuses_unknown_fields = True

    system_prompt = StrictCharField(
        max_length=SYSTEM_PROMPT_MAX_LENGTH, allow_blank=True, trim_whitespace=False, required=False
    )
    model = StrictCharField(max_length=MODEL_NAME_MAX_LENGTH, allow_null=True, allow_blank=True, required=False)
    temperature = StrictFloatField(min_value=0.0, max_value=TEMPERATURE_MAX, allow_null=True, required=False)
    max_tokens = StrictIntegerField(min_value=1, max_value=MAX_TOKENS_MAX, allow_null=True, required=False)
    context_turns = StrictIntegerField(min_value=0, max_value=CONTEXT_TURNS_MAX, required=False)

    def validate_model(self, value: str | None) -> str | None:
        return _optional_model(value)

    def to_internal_value(self, data: Any) -> Any:
        # A misspelt field would otherwise be ignored and the client told all went well.
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class ChatInputSerializer(ChatSettingsFields):
    """``POST /api/chats``: lengths and the agent-name rule are the model's; unknown fields are
    refused."""

    title = StrictCharField(max_length=CHAT_TITLE_MAX_LENGTH)
    agent = StrictCharField(max_length=AGENT_NAME_MAX_LENGTH, validators=[validate_agent_name])
    node = StrictCharField(max_length=64, required=False, allow_null=True)


class ChatChangeInputSerializer(ChatSettingsFields):
    """``PATCH /api/chats/{id}``: any of these, at least one."""

    title = StrictCharField(max_length=CHAT_TITLE_MAX_LENGTH, required=False)
    archived = StrictBooleanField(required=False)


# Output shapes are declared field by field rather than as ModelSerializers: a
# ModelSerializer maps every model field again for each instance, which cost more than
# half of a send's serialization.


class ChatOutputSerializer(serializers.Serializer[Chat]):
    id = serializers.IntegerField()
    title = serializers.CharField()
    agent = serializers.CharField()
    node = serializers.CharField()
    created_at = serializers.DateTimeField()
    system_prompt = serializers.CharField()
    model = serializers.CharField(allow_null=True)
    temperature = serializers.FloatField(allow_null=True)
    max_tokens = serializers.IntegerField(allow_null=True)
    context_turns = serializers.IntegerField()
    archived = serializers.SerializerMethodField()

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_archived(self, chat: Chat) -> bool:
        return chat.archived_at is not None


class MessageOutputSerializer(serializers.Serializer[Message]):
    id = serializers.IntegerField()
    chat_id = serializers.IntegerField()
    role = serializers.ChoiceField(choices=Message.Role.choices)
    text = serializers.CharField()
    ts = serializers.DateTimeField()
    node = serializers.CharField()
    status = serializers.ChoiceField(choices=Message.Status.choices)
    model = serializers.CharField(allow_null=True, help_text="The model the node said answered; null if unknown.")
    backend = serializers.CharField(allow_null=True, help_text="The backend the node said answered; null if unknown.")
    tokens_used = serializers.IntegerField(allow_null=True)
    latency_ms = serializers.IntegerField(allow_null=True, help_text="How long the node's call took.")
    failure = serializers.SerializerMethodField(help_text='The error code of a failed operator message, else "".')
    attempts = serializers.IntegerField(help_text="Delivery attempts of an operator message (0 for replies).")

    @extend_schema_field(OpenApiTypes.STR)
    def get_failure(self, message: Message) -> str:
        return message.failure if message.status == Message.Status.FAILED else ""


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


class SearchItemSerializer(serializers.Serializer[Any]):
    chat = ChatOutputSerializer()
    message = MessageOutputSerializer()


class SearchPageSerializer(serializers.Serializer[Any]):
    items = SearchItemSerializer(many=True)
    next_cursor = serializers.CharField(
        allow_null=True, help_text="Pass it as `cursor` for the next page; null at the end."
    )


class ChatExportSerializer(serializers.Serializer[Any]):
    chat = ChatOutputSerializer()
    messages = MessageOutputSerializer(many=True, help_text="Every message of the chat, oldest first.")


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
