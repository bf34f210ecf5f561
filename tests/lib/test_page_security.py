"""Every HTML page the app serves carries a Content-Security-Policy with no inline code:
the console's, the admin's, the API's docs, error pages."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.personas import make_admin

STRICT = {"script-src 'self'", "style-src 'self'", "default-src 'none'", "frame-ancestors 'none'"}


def assert_strict_policy(response, path: str) -> str:
    assert response["Content-Type"].startswith("text/html"), (path, response["Content-Type"])
    policy = response.get("Content-Security-Policy")
    assert policy, f"{path} has no Content-Security-Policy"
    directives = {part.strip() for part in policy.split(";")}
    assert directives >= STRICT, (path, policy)
    assert "unsafe-inline" not in policy, (path, policy)
    assert "unsafe-eval" not in policy, (path, policy)
    return policy


@pytest.fixture
def root(db):
    return make_admin("root")


def test_every_admin_page_type_carries_a_strict_policy(root, alice):
    alice.new_chat()
    pages = [
        "/admin/",
        "/admin/auth/user/",
        "/admin/auth/user/?is_staff__exact=1",
        f"/admin/auth/user/{alice.user.pk}/change/",
        "/admin/auth/user/add/",
        "/admin/audit/auditevent/",
        "/admin/chats/chat/",
        "/admin/password_change/",
    ]
    for path in pages:
        response = root.admin.get(path)
        assert response.status_code == 200, (path, response.status_code)
        assert_strict_policy(response, path)
    assert_strict_policy(Client().get("/admin/login/"), "/admin/login/")


def test_the_api_docs_carry_a_strict_policy_and_load_their_script_as_a_file(db):
    response = Client().get("/api/docs/")
    page = response.content.decode()
    policy = assert_strict_policy(response, "/api/docs/")
    # Swagger UI's stylesheet draws its icons from data: URIs; nothing else is loosened.
    assert "img-src 'self' data:" in policy
    assert "<style" not in page
    assert '<script src="/api/docs/?script="></script>' in page
    script = Client().get("/api/docs/?script=")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")


def test_console_and_error_pages_carry_the_strict_policy(alice):
    console = Client()
    assert console.login(username="alice", password=alice.password)
    for client, path in [
        (console, "/console/"),
        (Client(), "/console/login/"),
        (Client(), "/no/such/page"),
        (console, "/console/chats/999999/"),
    ]:
        response = client.get(path)
        policy = assert_strict_policy(response, path)
        assert "img-src 'self';" in policy
