from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.i18n import set_language

from chats import views
from chats.middleware import idempotent
from chats.send_gate import send_gated
from operators.login import ConsoleAuthenticationForm

app_name = "console"

urlpatterns = [
    path("", views.chat_list, name="chat-list"),
    path("chats/<id:chat_id>/", views.chat_detail, name="chat-detail"),
    path(
        "chats/<id:chat_id>/send",
        send_gated(idempotent(surface=views.CONSOLE_SEND)(views.chat_send)),
        name="chat-send",
    ),
    path("chats/<id:chat_id>/updates", views.chat_updates, name="chat-updates"),
    path("chats/<id:chat_id>/older", views.chat_older, name="chat-older"),
    path("chats/<id:chat_id>/read", views.chat_read, name="chat-read"),
    path("updates", views.chat_list_updates, name="chat-list-updates"),
    path("chats/<id:chat_id>/rename", views.chat_rename_view, name="chat-rename"),
    path("chats/<id:chat_id>/archive", views.chat_archive_view, name="chat-archive"),
    path("chats/<id:chat_id>/settings", views.chat_settings_view, name="chat-settings"),
    path("search/", views.search_view, name="search"),
    path("language", set_language, name="language"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="console/login.html",
            authentication_form=ConsoleAuthenticationForm,
            redirect_authenticated_user=True,
        ),
        name="login",
    ),
    path("logout/", views.ConsoleLogoutView.as_view(), name="logout"),
]
