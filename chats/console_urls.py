from django.contrib.auth import views as auth_views
from django.urls import path

from chats import views
from operators.login import ConsoleAuthenticationForm

app_name = "console"

urlpatterns = [
    path("", views.chat_list, name="chat-list"),
    path("chats/<id:chat_id>/", views.chat_detail, name="chat-detail"),
    path("chats/<id:chat_id>/send", views.chat_send, name="chat-send"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="console/login.html",
            authentication_form=ConsoleAuthenticationForm,
            redirect_authenticated_user=True,
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]
