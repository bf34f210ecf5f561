"""A request's id comes from a trusted proxy or from the console, never from the client:
an id a client makes up must not reach the audit trail."""

from __future__ import annotations

import logging
import uuid

from audit.models import AuditEvent


def test_an_untrusted_clients_request_id_never_reaches_an_audit_row(alice, caplog):
    forged = "req-of-someone-else"
    with caplog.at_level(logging.INFO, logger="sofiia.access"):
        response = alice.api.post(
            "/api/chats", {"title": "T", "agent": "echo"}, format="json", HTTP_X_REQUEST_ID=forged
        )
    assert response.status_code == 201
    generated = response["X-Request-ID"]
    assert generated != forged
    uuid.UUID(generated)
    event = AuditEvent.objects.get(action="chat.create")
    assert event.request_id == generated
    assert not AuditEvent.objects.filter(request_id=forged).exists()
    (access,) = [record for record in caplog.records if record.name == "sofiia.access"]
    assert (access.request_id, access.client_request_id) == (generated, forged)


def test_a_clients_request_id_is_logged_bounded_and_stripped(db, client, caplog):
    with caplog.at_level(logging.INFO, logger="sofiia.access"):
        client.get("/livez", HTTP_X_REQUEST_ID="<script>" + "a" * 500)
    (access,) = [record for record in caplog.records if record.name == "sofiia.access"]
    assert access.client_request_id == "_script_" + "a" * 56


def test_a_trusted_proxys_request_id_is_kept_and_echoed(alice, behind_proxy):
    response = alice.api.post(
        "/api/chats", {"title": "T", "agent": "echo"}, format="json", HTTP_X_REQUEST_ID="edge-7f3a"
    )
    assert response["X-Request-ID"] == "edge-7f3a"
    assert AuditEvent.objects.get(action="chat.create").request_id == "edge-7f3a"


def test_forwarded_addresses_do_not_make_a_client_a_trusted_proxy(alice, settings):
    settings.SOFIIA_TRUSTED_PROXIES = ["10.0.0.0/8"]
    response = alice.api.post(
        "/api/chats",
        {"title": "T", "agent": "echo"},
        format="json",
        REMOTE_ADDR="203.0.113.5",
        HTTP_X_FORWARDED_FOR="10.0.0.1",
        HTTP_X_REQUEST_ID="forged-through-xff",
    )
    assert response["X-Request-ID"] != "forged-through-xff"
    assert AuditEvent.objects.get(action="chat.create").request_id == response["X-Request-ID"]
