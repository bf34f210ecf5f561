"""Test personas: operators with an API client that carries their token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import Group, User
from django.test import Client
from rest_framework.test import APIClient

from operators.services import operator_create


@dataclass
class Persona:
    user: User
    token: str
    password: str
    api: APIClient

    @property
    def username(self) -> str:
        return self.user.get_username()

    def new_chat(self, *, title: str = "a chat", agent: str = "echo", node: str | None = "NODA1") -> dict[str, Any]:
        body: dict[str, Any] = {"title": title, "agent": agent}
        if node is not None:
            body["node"] = node
        response = self.api.post("/api/chats", body, format="json")
        assert response.status_code == 201, response.content
        return response.json()  # type: ignore[no-any-return]

    def send(self, chat_id: int, text: str, *, key: str | None, **extra: Any) -> Any:
        headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
        return self.api.post(f"/api/chats/{chat_id}/send", {"text": text}, format="json", **headers, **extra)


def make_persona(username: str) -> Persona:
    password = f"{username}-correct-horse-battery"
    created = operator_create(username=username, password=password, with_token=True)
    assert created.token is not None
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {created.token}")
    return Persona(user=created.operator, token=created.token, password=password, api=client)  # type: ignore[arg-type]


@dataclass
class Staff:
    """A Django admin user, logged in to the admin through its login form."""

    user: User
    password: str
    admin: Client

    @property
    def username(self) -> str:
        return self.user.get_username()


def _admin_login(username: str, password: str) -> Client:
    client = Client()
    response = client.post("/admin/login/", {"username": username, "password": password, "next": "/admin/"})
    assert response.status_code == 302, response.content
    return client


def make_auditor(username: str) -> Staff:
    """Staff in the ``auditors`` group: view-only access to audit events, nothing else."""
    password = f"{username}-correct-horse-battery"
    user = User.objects.create_user(username, password=password, is_staff=True)
    user.groups.add(Group.objects.get(name="auditors"))
    return Staff(user=user, password=password, admin=_admin_login(username, password))


def make_admin(username: str) -> Staff:
    password = f"{username}-correct-horse-battery"
    user = User.objects.create_superuser(username, password=password)
    return Staff(user=user, password=password, admin=_admin_login(username, password))
