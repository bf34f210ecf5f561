"""The OpenAPI description: served at /api/schema/, browsable at /api/docs/ from local assets,
complete (every operation, every answer with its JSON body) and the same as docs/openapi.yaml."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import staticfiles_storage
from django.test import Client

DOCUMENTED = {
    ("/api/audit", "get"),
    ("/api/chats", "get"),
    ("/api/chats", "post"),
    ("/api/chats/{chat_id}", "get"),
    ("/api/chats/{chat_id}", "patch"),
    ("/api/chats/{chat_id}/export", "get"),
    ("/api/chats/{chat_id}/messages", "get"),
    ("/api/chats/{chat_id}/send", "post"),
    ("/api/health", "get"),
    ("/api/nodes", "get"),
    ("/api/search", "get"),
    ("/livez", "get"),
    ("/readyz", "get"),
}


def schema(client: Client) -> dict:
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    return response.json()


def test_the_schema_is_openapi_3_1_and_public(db):
    document = schema(Client())
    assert document["openapi"] == "3.1.0"
    yaml_answer = Client().get("/api/schema/")
    assert yaml_answer.status_code == 200
    assert yaml.safe_load(yaml_answer.content)["openapi"] == "3.1.0"


def test_every_operation_is_described_with_its_json_answers(db):
    document = schema(Client())
    operations = {(path, method): op for path, item in document["paths"].items() for method, op in item.items()}
    assert set(operations) == DOCUMENTED
    for (path, method), operation in operations.items():
        for status, response in operation["responses"].items():
            # The export's document is JSON or Markdown; every other answer is JSON.
            expected = ["application/json", "text/markdown"] if path.endswith("/export") and status == "200" else None
            assert list(response["content"]) == (expected or ["application/json"]), (path, method, status)
            assert "X-Request-ID" in response["headers"], (path, method, status)
            if int(status) >= 400 and path.startswith("/api/") and path != "/api/health":
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref.split("/")[-1] in {"Error", "SendError"}, (path, method, status)
        if path.startswith("/api/chats") or path in ("/api/nodes", "/api/search"):
            assert {"401", "403", "503"} <= set(operation["responses"]), (path, method)
            assert operation["security"] == [{"bearerAuth": []}, {"cookieAuth": []}]


def test_the_send_operation_names_its_headers_and_every_refusal(db):
    send = schema(Client())["paths"]["/api/chats/{chat_id}/send"]["post"]
    key = next(p for p in send["parameters"] if p["name"] == "Idempotency-Key")
    assert key["in"] == "header"
    assert key["required"] is True
    assert set(send["responses"]) >= {"201", "400", "401", "404", "409", "413", "422", "429", "502", "503", "504"}
    assert {"Idempotent-Replayed", "RateLimit", "RateLimit-Policy"} <= set(send["responses"]["201"]["headers"])
    for status in ("409", "429", "503"):
        assert "Retry-After" in send["responses"][status]["headers"]


def test_the_error_body_and_the_security_schemes_are_components(db):
    components = schema(Client())["components"]
    error = components["schemas"]["Error"]
    assert set(error["required"]) == {"error", "detail"}
    assert {"fields", "scope", "retry_after"} <= set(error["properties"])
    assert "operator_message" in components["schemas"]["SendError"]["properties"]
    schemes = components["securitySchemes"]
    assert schemes["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["bearerAuth"]["description"],
    }
    assert schemes["auditKey"]["name"] == "X-Audit-Key"


def test_the_committed_description_is_what_the_code_describes(db):
    committed = yaml.safe_load((Path(__file__).resolve().parent.parent / "docs" / "openapi.yaml").read_text())
    assert committed == yaml.safe_load(Client().get("/api/schema/").content)


def test_the_docs_page_loads_its_assets_from_this_instance(db):
    for path in ("/api/docs/",):
        page = Client().get(path)
        assert page.status_code == 200
        html = page.content.decode()
        sources = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert sources
        assert not [s for s in sources if s.startswith(("http:", "https:", "//"))], sources
        for source in sources:
            if source.startswith("/static/"):
                # A hashed name once collectstatic has run (the browser tests run it), else the
                # app's own file.
                name = source.removeprefix("/static/")
                assert staticfiles_storage.exists(name) or finders.find(name), source


def test_a_new_chats_node_is_one_of_the_configured_nodes(db, settings, alice):
    settings.SOFIIA_NODES = {**settings.SOFIIA_NODES, "EDGE7": settings.SOFIIA_NODES["NODA2"]}
    node = schema(Client())["components"]["schemas"]["ChatInputRequest"]["properties"]["node"]
    assert node["enum"] == [*settings.SOFIIA_NODES, None]
    for name in settings.SOFIIA_NODES:
        assert (
            alice.api.post("/api/chats", {"title": "t", "agent": "echo", "node": name}, format="json").status_code
            == 201
        )
    refused = alice.api.post("/api/chats", {"title": "t", "agent": "echo", "node": "NODA9"}, format="json")
    assert refused.json()["error"] == "unknown_node"


@pytest.mark.parametrize(
    ("title", "valid"),
    [("Деплой", True), (" a ", True), ("\x00", False), ("a\x00b", False), ("   ", False), ("\x1c\u3000\t", False)],
)
def test_the_text_pattern_says_what_the_server_refuses(db, alice, title, valid):
    pattern = schema(Client())["components"]["schemas"]["ChatInputRequest"]["properties"]["title"]["pattern"]
    assert bool(re.search(pattern, title)) is valid
    response = alice.api.post("/api/chats", {"title": title, "agent": "echo"}, format="json")
    assert response.status_code == (201 if valid else 400), response.content


@pytest.mark.parametrize(("order", "status"), [("", 200), ("asc", 200), ("up", 400)])
def test_an_optional_query_filter_given_empty_is_described_and_read_as_not_given(db, settings, order, status):
    settings.SOFIIA_AUDIT_KEYS = ["openapi-test-audit-key-" + "k" * 24]
    parameters = schema(Client())["paths"]["/api/audit"]["get"]["parameters"]
    described = next(p for p in parameters if p["name"] == "order")["schema"]["enum"]
    assert (order in described) is (status == 200)
    answer = Client().get("/api/audit", {"order": order}, HTTP_X_AUDIT_KEY=settings.SOFIIA_AUDIT_KEYS[0])
    assert answer.status_code == status
