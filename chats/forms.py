from __future__ import annotations

import uuid

from django import forms
from django.conf import settings

from chats.validators import validate_agent_name


class ChatCreateForm(forms.Form):
    title = forms.CharField(min_length=1, max_length=200)
    agent = forms.CharField(min_length=1, max_length=64, validators=[validate_agent_name])
    node = forms.ChoiceField(choices=())

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["node"].choices = [(name, name) for name in settings.SOFIIA_NODES]  # type: ignore[attr-defined]
        self.fields["node"].initial = settings.SOFIIA_DEFAULT_NODE


class SendForm(forms.Form):
    text = forms.CharField(min_length=1, max_length=16000, strip=False, widget=forms.Textarea(attrs={"rows": 3}))
    # A fresh key per rendered form: a double submit or a browser retry re-sends the
    # same key, and the send service delivers the message once.
    idempotency_key = forms.CharField(max_length=255, widget=forms.HiddenInput, initial=lambda: uuid.uuid4().hex)
