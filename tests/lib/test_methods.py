"""Methods a URL does not take are a 405 with ``Allow`` before the session, CSRF or
authentication look at the request; HEAD works wherever GET does."""

from __future__ import annotations

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from sofiia.lib.methods import UNDECLARED_METHODS, allowed_methods, view_methods

pytestmark = pytest.mark.django_db

UNKNOWN_METHODS = ("QUERY", "FOO", "PROPFIND", "TRACE", "CONNECT", "X-RANDOM-7F3A")


def csrf_client() -> Client:
    return Client(enforce_csrf_checks=True)


def assert_405(response, allow: str) -> None:
    assert response.status_code == 405, (response.status_code, response.content[:200])
    assert response["Allow"] == allow
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"] == "method_not_allowed"
    assert body["allowed"] == allow.split(", ")


@pytest.mark.parametrize("method", UNKNOWN_METHODS)
@pytest.mark.parametrize("path", ["/livez", "/readyz", "/api/health"])
def test_an_unknown_method_on_a_health_url_is_a_json_405(method, path):
    assert_405(csrf_client().generic(method, path), "GET, HEAD")


@pytest.mark.parametrize("method", UNKNOWN_METHODS)
def test_an_unknown_method_on_the_api_is_a_json_405_not_a_csrf_403(alice, method):
    chat = alice.new_chat()
    assert_405(csrf_client().generic(method, "/api/chats"), "GET, HEAD, POST, OPTIONS")
    assert_405(csrf_client().generic(method, f"/api/chats/{chat['id']}/send"), "POST, OPTIONS")


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "POST"])
def test_an_unsafe_method_a_health_url_does_not_take_is_a_405_not_a_csrf_403(method):
    for path in ("/livez", "/readyz", "/metrics"):
        assert_405(csrf_client().generic(method, path), "GET, HEAD")


def test_a_console_url_refuses_methods_it_does_not_take_without_a_session(alice):
    chat = alice.new_chat()
    client = csrf_client()
    assert_405(client.generic("QUERY", "/console/"), "GET, HEAD, POST")
    assert_405(client.put(f"/console/chats/{chat['id']}/send"), "POST")
    assert_405(client.delete(f"/console/chats/{chat['id']}/"), "GET, HEAD")
    assert_405(client.get(f"/console/chats/{chat['id']}/send"), "POST")
    assert Session.objects.count() == 0


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/api/health", "/metrics", "/console/login/", "/api/docs/"])
def test_head_works_wherever_get_does_and_has_no_body(path):
    get, head = Client().get(path), Client().head(path)
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head["Content-Type"] == get["Content-Type"]


def test_head_of_a_console_page_is_a_login_redirect_like_get():
    response = Client().head("/console/")
    assert (response.status_code, response["Location"]) == (302, "/console/login/?next=/console/")


def test_the_forms_and_the_api_still_take_their_methods(alice, nodes):
    chat = alice.new_chat()
    sent = alice.send(chat["id"], "hello", key="methods-1")
    assert sent.status_code == 201
    console = Client()
    assert console.login(username="alice", password=alice.password)
    response = console.post(f"/console/chats/{chat['id']}/rename", {"title": "renamed"})
    assert response.status_code == 302
    assert alice.api.get(f"/api/chats/{chat['id']}").json()["title"] == "renamed"
    assert alice.api.options("/api/chats").status_code == 200


def test_an_unknown_url_stays_a_404_whatever_the_method():
    assert Client().generic("QUERY", "/api/no/such/thing").status_code == 404
    assert Client().generic("FOO", "/no/such/page").status_code == 404


def _patterns(resolver: URLResolver, prefix: str = "") -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = []
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            found += _patterns(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            found.append((prefix + str(entry.pattern), entry.callback))
    return found


def test_every_route_outside_the_admin_declares_its_methods():
    """A new view is picked up from what it declares (a class's handlers, require_http_methods);
    only the admin's and set_language, which declare nothing, get the form's GET/HEAD/POST."""
    undeclared = [
        route
        for route, view in _patterns(get_resolver())
        if view_methods(view) is UNDECLARED_METHODS and not route.startswith("admin/") and route != "console/language"
    ]
    assert undeclared == []


def test_class_views_take_their_handlers_and_function_views_their_declared_methods():
    from chats import api, views
    from sofiia import health

    assert allowed_methods(api.ChatListCreateApi.as_view()) == {"GET", "HEAD", "POST", "OPTIONS"}
    assert allowed_methods(health.livez) == {"GET", "HEAD"}
    assert allowed_methods(views.chat_send) == {"POST"}
    assert allowed_methods(views.chat_list) == {"GET", "HEAD", "POST"}
