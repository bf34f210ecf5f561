from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.conf import settings

from chats.models import Chat, Message


class ChatCreateForm(forms.ModelForm[Chat]):
    """Lengths and the agent-name rule come from the model; the node is one of SOFIIA_NODES."""

    node = forms.ChoiceField(choices=())

    class Meta:
        model = Chat
        fields = ["title", "agent", "node"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["node"].choices = [(name, name) for name in settings.SOFIIA_NODES]  # type: ignore[attr-defined]
        self.fields["node"].initial = settings.SOFIIA_DEFAULT_NODE


class SendForm(forms.ModelForm[Message]):
    """Renders the composer; the send pipeline checks what it posts."""

    # A fresh key per rendered form: a double submit or a browser retry re-sends the
    # same key, and the pipeline delivers the message once.
    idempotency_key = forms.CharField(max_length=255, widget=forms.HiddenInput, initial=lambda: uuid.uuid4().hex)

    class Meta:
        model = Message
        fields = ["text"]
        widgets = {"text": forms.Textarea(attrs={"rows": 3})}
