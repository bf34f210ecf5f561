"""schemathesis hooks for tests/fuzz/test_schemathesis.py (``SCHEMATHESIS_HOOKS``).

``positive_data_acceptance`` holds the server to "a request the description calls valid is
accepted". A few refusals of schema-valid requests are about state that no schema can
express, and each is documented on its operation: they are let through here, and only when
this hook can see for itself that the refusal is the right one — any other refusal of valid
data still fails the run.

- ``400 invalid_cursor`` for a cursor the server did not issue: a cursor is signed, so a
  generated one has the documented shape but never a valid signature (real cursors are
  followed along the schema's links in the stateful phase).
- ``422 idempotency_key_reused``: the same generated ``Idempotency-Key`` sent again with
  another text (the contract's answer, like the ``409`` of a key in flight).
- ``400 invalid_input`` on ``until`` alone when ``until`` is before ``since`` (two
  parameters' order, which OpenAPI cannot state).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import schemathesis
from schemathesis.openapi.checks import RejectedPositiveData


def _body(response: Any) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _until_before_since(query: dict[str, Any]) -> bool:
    try:
        since = datetime.fromisoformat(str(query["since"]))
        until = datetime.fromisoformat(str(query["until"]))
        return until < since
    except (KeyError, ValueError, TypeError):
        return False


def documented_refusal(status: int, body: dict[str, Any], query: dict[str, Any]) -> bool:
    """Whether a refusal of a schema-valid request is one the description documents as state."""
    code = body.get("error")
    if status == 400 and code == "invalid_cursor":
        return bool(query.get("cursor"))
    if status == 422 and code == "idempotency_key_reused":
        return True
    if status == 400 and code == "invalid_input" and set(body.get("fields") or {}) == {"until"}:
        return _until_before_since(query)
    return False


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    if not isinstance(failure, RejectedPositiveData):
        return True
    return not documented_refusal(response.status_code, _body(response), dict(case.query or {}))
