from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from chats.models import CHAT_TITLE_MAX_LENGTH, Chat


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
