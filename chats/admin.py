from django.contrib import admin

from chats.models import Chat, Message


@admin.register(Chat)
class ChatAdmin(admin.ModelAdmin[Chat]):
    list_display = ["id", "title", "owner", "agent", "node", "created_at"]
    list_filter = ["node"]
    search_fields = ["title", "agent", "owner__username"]
    readonly_fields = ["owner", "created_at"]
    date_hierarchy = "created_at"


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin[Message]):
    list_display = ["id", "chat", "role", "status", "node", "ts", "attempts"]
    list_filter = ["role", "status", "node"]
    search_fields = ["idempotency_key", "chat__title"]
    readonly_fields = [f.name for f in Message._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False
