"""The fuzzer lets through only the refusals of valid data that the description documents."""

from __future__ import annotations

import pytest

from tests.fuzz.hooks import documented_refusal

CURSOR = {"cursor": "abc:" + "x" * 43}


@pytest.mark.parametrize(
    ("status", "body", "query", "documented"),
    [
        (400, {"error": "invalid_cursor"}, CURSOR, True),
        (400, {"error": "invalid_cursor"}, {}, False),  # no cursor given: the refusal is a bug
        (422, {"error": "idempotency_key_reused"}, {}, True),
        (
            400,
            {"error": "invalid_input", "fields": {"until": ["x"]}},
            {"since": "2026-01-02", "until": "2026-01-01"},
            True,
        ),
        (
            400,
            {"error": "invalid_input", "fields": {"until": ["x"]}},
            {"since": "2026-01-01", "until": "2026-01-02"},
            False,
        ),
        (400, {"error": "invalid_input", "fields": {"title": ["x"]}}, CURSOR, False),
        (400, {"error": "unknown_node"}, {}, False),
        (400, {"error": "invalid_limit"}, CURSOR, False),
        (500, {"error": "invalid_cursor"}, CURSOR, False),
    ],
)
def test_only_documented_refusals_of_valid_data_are_let_through(status, body, query, documented):
    assert documented_refusal(status, body, query) is documented
