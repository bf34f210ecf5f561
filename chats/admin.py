"""Chats and messages in the admin. Every change to a chat is an audit event; messages are
read-only there and chats cannot be deleted (the messages are the record of what was said);
a chat's agent and node are checked as the API checks them."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest

from audit.admin import AuditedAdminMixin
from chats.models import Chat, Message


class ChatAdminForm(forms.ModelForm[Chat]):
    node = forms.ChoiceField(choices=())

    class Meta:
        model = Chat
        fields = ["title", "agent", "node"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["node"].choices = [(name, name) for name in settings.SOFIIA_NODES]  # type: ignore[attr-defined]


@admin.register(Chat)
class ChatAdmin(AuditedAdminMixin, admin.ModelAdmin[Chat]):
    audit_subject = "chat"
    audit_target_type = "chat"
    form = ChatAdminForm
    list_display = ["id", "title", "owner", "agent", "node", "created_at"]
    list_filter = ["node"]
    search_fields = ["title", "agent", "owner__username"]
    readonly_fields = ["owner", "created_at"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a chat belongs to the operator who made it in the console or the API

    def has_delete_permission(self, request: HttpRequest, obj: Chat | None = None) -> bool:
        return False  # its messages are the record, which the admin does not destroy

    def audit_target(self, obj: Chat) -> tuple[Any, dict[str, Any]]:
        return obj.pk, {"name": str(obj), "agent": obj.agent, "node": obj.node, "owner": obj.owner_id}


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin[Message]):
    list_display = ["id", "chat", "role", "status", "node", "ts", "attempts"]
    list_filter = ["role", "status", "node"]
    search_fields = ["idempotency_key", "chat__title"]
    readonly_fields = [f.name for f in Message._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Message | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Message | None = None) -> bool:
        return False
