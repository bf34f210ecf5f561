"""The request's X-Request-ID goes with every call the console makes to a node, so a node's
logs line up with the console's."""

from __future__ import annotations

import logging

from nodes.registry import node_statuses_settle
from sofiia.lib.logging import DjangoRequestFilter


def test_an_infer_call_carries_the_request_id(alice, nodes, behind_proxy):
    chat = alice.new_chat()
    response = alice.send(chat["id"], "trace me", key="k", HTTP_X_REQUEST_ID="trace-infer-1")
    assert response.status_code == 201
    (call,) = nodes["NODA1"].calls
    assert call.request_id == "trace-infer-1"


def test_a_generated_request_id_is_forwarded_too(alice, nodes):
    chat = alice.new_chat()
    response = alice.send(chat["id"], "trace me", key="k")
    (call,) = nodes["NODA1"].calls
    assert call.request_id == response["X-Request-ID"]


def test_the_health_probes_a_request_sets_off_carry_its_request_id(alice, nodes, behind_proxy):
    response = alice.api.get("/api/nodes", HTTP_X_REQUEST_ID="trace-probe-1")
    assert response.status_code == 200
    assert node_statuses_settle()
    assert nodes["NODA1"].probe_request_ids == ["trace-probe-1"]
    assert nodes["NODA2"].probe_request_ids == ["trace-probe-1"]


class _Request:
    request_id = "rid-7"


def _record(exc_info: object) -> logging.LogRecord:
    record = logging.LogRecord("django.request", logging.ERROR, __file__, 1, "Bad Gateway: %s", ("/x",), None)
    record.exc_info = exc_info  # type: ignore[assignment]
    record.request = _Request()
    record.status_code = 502
    return record


def test_djangos_status_lines_are_dropped_and_its_crash_lines_kept_with_the_request_id():
    log_filter = DjangoRequestFilter()
    assert log_filter.filter(_record(None)) is False
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        crash = _record(sys.exc_info())
    assert log_filter.filter(crash) is True
    assert crash.request_id == "rid-7"
    assert not hasattr(crash, "request")
