from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from chats.models import (
    CHAT_TITLE_MAX_LENGTH,
    CONTEXT_TURNS_MAX,
    MAX_TOKENS_MAX,
    MODEL_NAME_MAX_LENGTH,
    SYSTEM_PROMPT_MAX_LENGTH,
    TEMPERATURE_MAX,
    Chat,
)


class ChatCreateForm(forms.ModelForm[Chat]):
    """Lengths and the agent-name rule come from the model; the node is one of SOFIIA_NODES."""

    node = forms.ChoiceField(choices=(), label=_("Node"))

    class Meta:
        model = Chat
        fields = ["title", "agent", "node"]
        labels = {"title": _("Title"), "agent": _("Agent")}
        # The agent field suggests what the nodes offer (a datalist) and takes any valid name.
        widgets = {"agent": forms.TextInput(attrs={"list": "agent-suggestions", "autocomplete": "off"})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["node"].choices = [(name, name) for name in settings.SOFIIA_NODES]  # type: ignore[attr-defined]
        self.fields["node"].initial = settings.SOFIIA_DEFAULT_NODE


class SendForm(forms.Form):
    """Renders the composer; the send pipeline checks what it posts (length included, so a
    long paste is refused with the draft kept rather than cut by the browser)."""

    text = forms.CharField(
        label=_("Message"),
        widget=forms.Textarea(attrs={"rows": 3, "autocomplete": "off", "spellcheck": "true"}),
    )
    # A fresh key per composed message: a double submit or a browser retry re-sends the same
    # key, and the pipeline delivers the message once. autocomplete=off keeps the browser
    # from restoring an old key (and text) into the form on Back.
    idempotency_key = forms.CharField(
        max_length=255,
        widget=forms.HiddenInput(attrs={"autocomplete": "off"}),
        initial=lambda: uuid.uuid4().hex,
    )


class ChatRenameForm(forms.Form):
    title = forms.CharField(label=_("Title"), max_length=CHAT_TITLE_MAX_LENGTH, strip=True)


class ChatArchiveForm(forms.Form):
    archived = forms.BooleanField(required=False)


class LineFeedCharField(forms.CharField):
    """Text whose line breaks are LF, as the API's clients send them: browsers post a
    textarea's as CRLF, which would also count twice against the length limit."""

    def to_python(self, value: Any) -> str:
        return str(super().to_python(value)).replace("\r\n", "\n")


class ChatSettingsForm(forms.Form):
    """The chat's settings panel: the bounds are the API's (CONTRACT "Chat settings"). An
    empty model, temperature or max tokens means the node's own default."""

    system_prompt = LineFeedCharField(
        label=_("System prompt"),
        required=False,
        strip=False,
        max_length=SYSTEM_PROMPT_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    # Any model name: the node's list (a datalist) is only what it said last time.
    model = forms.CharField(
        label=_("Model"),
        required=False,
        max_length=MODEL_NAME_MAX_LENGTH,
        widget=forms.TextInput(attrs={"list": "model-suggestions", "autocomplete": "off"}),
    )
    temperature = forms.FloatField(
        label=_("Temperature"),
        required=False,
        min_value=0.0,
        max_value=TEMPERATURE_MAX,
        widget=forms.NumberInput(attrs={"step": "0.1"}),
    )
    max_tokens = forms.IntegerField(label=_("Max tokens"), required=False, min_value=1, max_value=MAX_TOKENS_MAX)
    context_turns = forms.IntegerField(label=_("Context turns"), min_value=0, max_value=CONTEXT_TURNS_MAX)

    def __init__(self, *args: Any, chat: Chat, **kwargs: Any) -> None:
        kwargs.setdefault(
            "initial",
            {
                "system_prompt": chat.system_prompt,
                "model": chat.model or "",
                "temperature": chat.temperature,
                "max_tokens": chat.max_tokens,
                "context_turns": chat.context_turns,
            },
        )
        kwargs.setdefault("auto_id", "settings-%s")
        super().__init__(*args, **kwargs)

    def changes(self) -> dict[str, Any]:
        """The validated settings as ``chat_change`` takes them."""
        data = dict(self.cleaned_data)
        data["model"] = data["model"] or None
        return data
