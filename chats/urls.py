from django.urls import path

from chats import api
from chats.middleware import idempotent
from chats.send_gate import send_gated

urlpatterns = [
    path("chats", api.ChatListCreateApi.as_view(), name="chat-list"),
    path("chats/<id:chat_id>", api.ChatDetailApi.as_view(), name="chat-detail"),
    path("chats/<id:chat_id>/messages", api.MessageListApi.as_view(), name="chat-messages"),
    path(
        "chats/<id:chat_id>/send",
        send_gated(idempotent(surface=api.API_SEND)(api.ChatSendApi.as_view())),
        name="chat-send",
    ),
    path("chats/<id:chat_id>/export", api.ChatExportApi.as_view(), name="chat-export"),
    path("search", api.ChatSearchApi.as_view(), name="search"),
]
