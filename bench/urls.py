"""The console's URLs and the benchmark's yardsticks: what the console would cost without
its guarantees, and what a page costs by ``OFFSET``."""

from django.urls import path

from bench import views
from sofiia.urls import urlpatterns as console_urlpatterns

urlpatterns = [
    path("bench/bare/chats/<id:chat_id>/send", views.bare_send, name="bench-bare-send"),
    path(
        "api/bench/offset/chats/<id:chat_id>/messages", views.MessagesByOffset.as_view(), name="bench-offset-messages"
    ),
    *console_urlpatterns,
]
