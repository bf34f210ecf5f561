from __future__ import annotations

import json
import logging
import uuid

from sofiia.lib.logging import JsonFormatter, RequestIdFilter
from sofiia.lib.request_id import REQUEST_ID_HEADER


def format_record(message, **extra):
    record = logging.LogRecord("sofiia.test", logging.WARNING, __file__, 1, message, None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    RequestIdFilter().filter(record)
    return json.loads(JsonFormatter().format(record))


def test_a_log_line_is_one_json_object_with_the_standard_fields():
    line = format_record("something.happened", chat_id=7, operator="alice")
    assert list(line)[:5] == ["ts", "level", "logger", "event", "request_id"]
    assert line["level"] == "warning"
    assert line["logger"] == "sofiia.test"
    assert line["event"] == "something.happened"
    assert line["request_id"] is None
    assert (line["chat_id"], line["operator"]) == (7, "alice")
    assert line["ts"].endswith("+00:00")
    assert "." in line["ts"]


def test_a_request_id_from_a_trusted_proxy_is_taken_from_the_header_and_echoed(db, client, behind_proxy):
    response = client.get("/api/health", HTTP_X_REQUEST_ID="req-1234")
    assert response[REQUEST_ID_HEADER] == "req-1234"


def test_a_bad_request_id_is_replaced_by_a_generated_one(db, client):
    response = client.get("/api/health", HTTP_X_REQUEST_ID="no spaces <or> tags")
    generated = response[REQUEST_ID_HEADER]
    assert generated != "no spaces <or> tags"
    uuid.UUID(generated)


def test_the_send_path_logs_operator_chat_node_status_and_duration(alice, caplog, behind_proxy):
    chat = alice.new_chat(node="NODA2")
    with caplog.at_level(logging.INFO):
        alice.send(chat["id"], "log me", key="k-log", HTTP_X_REQUEST_ID="req-send-1")
    sends = [r for r in caplog.records if r.getMessage() == "message.send"]
    assert len(sends) == 1
    record = sends[0]
    assert (record.operator, record.chat_id, record.node, record.status) == ("alice", chat["id"], "NODA2", "delivered")
    assert record.duration_ms >= 0
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "req-send-1"
    access = [r for r in caplog.records if r.name == "sofiia.access" and r.path.endswith("/send")]
    assert access[0].status == 201
    assert access[0].operator == "alice"
