"""Idempotent sends: the cache-backed fast path in front of ``POST /api/chats/{id}/send``.

Follows the IETF ``Idempotency-Key`` header draft and Stripe's behaviour:

- A key is scoped to operator + chat + key; the request fingerprint is a SHA-256 of the
  canonical JSON body.
- The first request claims the key with an atomic add (``SET NX`` in Redis) and runs the
  view. A 2xx answer is stored (status, body, content type) for ``SOFIIA_IDEMPOTENCY_TTL``
  seconds; any other answer releases the claim, so 4xx, 409, 429 and 5xx are never replayed
  and the client may simply retry.
- The same key and body again → the stored answer with ``Idempotent-Replayed: true``; the
  node is not called, nothing is stored, no rate limit is spent. Another body → 422. While
  the first request still runs → 409 with ``Retry-After``.
- A claim expires after the delivery lease (infer timeout + margin), so a worker that died
  holding it cannot block the key for longer than that.

The cache is only the fast path. The database guards exactly-once on its own (see
``chats.services.message_send``): whether the cache is flushed, restarted, unreachable or
``inmemory`` in several processes, a key never yields a second message or node call.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.http import HttpResponse

from chats.metrics import IDEMPOTENCY_BACKEND_ERRORS, IDEMPOTENCY_REQUESTS
from chats.services import IN_FLIGHT_RETRY_AFTER_SECONDS, delivery_lease_seconds
from sofiia.lib.cache_errors import cache_backend_errors
from sofiia.lib.errors import json_error

logger = logging.getLogger(__name__)

CACHE_ALIAS = "idempotency"
REPLAYED_HEADER = "Idempotent-Replayed"
_STORED_HEADERS = ("Content-Type",)


def request_fingerprint(body: bytes) -> str:
    """SHA-256 of the body's canonical JSON (key order and whitespace do not matter)."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    except (ValueError, UnicodeDecodeError):
        canonical = body
    return hashlib.sha256(canonical).hexdigest()


def cache_key(*, operator_id: int, chat_id: int, key: str) -> str:
    digest = hashlib.sha256(key.encode("ascii", "replace")).hexdigest()
    return f"send:{operator_id}:{chat_id}:{digest}"


@dataclass(frozen=True)
class Claim:
    """A key this request holds while the view runs."""

    cache_key: str
    claim_id: str
    fingerprint: str


@dataclass(frozen=True)
class Begin:
    """What to do with a send request: answer right away, or run the view (holding ``claim``)."""

    response: HttpResponse | None = None
    claim: Claim | None = None
    result: str | None = None  # counted now when the request is answered here
    message_id: int | None = None  # the operator message a replay is about


def _replay(record: dict[str, Any]) -> HttpResponse:
    response = HttpResponse(record["body"], status=record["status"])
    for name, value in record["headers"].items():
        response[name] = value
    response[REPLAYED_HEADER] = "true"
    return response


def _in_flight() -> HttpResponse:
    return json_error(
        409,
        "idempotency_key_in_flight",
        "A request with this Idempotency-Key is still being processed; retry shortly.",
        headers={"Retry-After": str(IN_FLIGHT_RETRY_AFTER_SECONDS)},
    )


def _mismatch() -> HttpResponse:
    return json_error(422, "idempotency_key_reused", "This Idempotency-Key was already used with a different body.")


def _answer_from(record: dict[str, Any], fingerprint: str) -> Begin:
    if record["fingerprint"] != fingerprint:
        return Begin(response=_mismatch(), result="mismatch")
    if record["state"] == "done":
        return Begin(response=_replay(record), result="replay", message_id=record.get("message_id"))
    return Begin(response=_in_flight(), result="conflict")


def idempotency_begin(*, operator_id: int, chat_id: int, key: str, body: bytes) -> Begin:
    """Answer a repeat from the cache, or claim the key for this request.

    When the cache cannot be reached the request goes on unclaimed: the database guard
    still prevents a duplicate, and the failure is logged and counted.
    """
    fingerprint = request_fingerprint(body)
    scope_key = cache_key(operator_id=operator_id, chat_id=chat_id, key=key)
    claim = Claim(cache_key=scope_key, claim_id=uuid.uuid4().hex, fingerprint=fingerprint)
    cache = caches[CACHE_ALIAS]
    try:
        for _ in range(2):
            record = cache.get(scope_key)
            if record is not None:
                return _answer_from(record, fingerprint)
            claimed = cache.add(
                scope_key,
                {"state": "in_flight", "fingerprint": fingerprint, "claim_id": claim.claim_id, "at": time.time()},
                timeout=delivery_lease_seconds(),
            )
            if claimed:
                logger.info("idempotency.claim", extra={"chat_id": chat_id, "operator_id": operator_id})
                return Begin(claim=claim)
            # Lost the race for the key between get and add: read the winner's record.
    except cache_backend_errors() as exc:
        _backend_failed("claim", exc)
        return Begin()
    # The key was claimed and expired in between, twice: let the database decide.
    return Begin()


def idempotency_finish(claim: Claim, response: HttpResponse) -> None:
    """Store a successful answer for replay; release the claim on anything else."""
    cache = caches[CACHE_ALIAS]
    try:
        if 200 <= response.status_code < 300:
            headers = {name: response[name] for name in _STORED_HEADERS if name in response}
            data = getattr(response, "data", None)
            message = data.get("operator_message") if isinstance(data, dict) else None
            record = {
                "state": "done",
                "fingerprint": claim.fingerprint,
                "status": response.status_code,
                "body": response.content,
                "headers": headers,
                "message_id": message.get("id") if isinstance(message, dict) else None,
            }
            cache.set(claim.cache_key, record, timeout=settings.SOFIIA_IDEMPOTENCY_TTL)
        else:
            current = cache.get(claim.cache_key)
            # Only our own claim: after a lease expiry the key may belong to a newer request.
            if current is not None and current.get("claim_id") == claim.claim_id:
                cache.delete(claim.cache_key)
    except cache_backend_errors() as exc:
        _backend_failed("finish", exc)


def result_of(response: HttpResponse) -> str:
    """How a send that ran the view ended, in idempotency terms (the database may replay too)."""
    if response.get(REPLAYED_HEADER) == "true":
        return "replay"
    if response.status_code == 409:
        return "conflict"
    if response.status_code == 422:
        return "mismatch"
    return "miss"


def idempotency_count(result: str, *, chat_id: int, operator: str) -> None:
    IDEMPOTENCY_REQUESTS.labels(result=result).inc()
    if result != "miss":
        logger.info(f"idempotency.{result}", extra={"chat_id": chat_id, "operator": operator})


def _backend_failed(step: str, exc: BaseException) -> None:
    IDEMPOTENCY_BACKEND_ERRORS.inc()
    logger.error(
        "idempotency.backend_error",
        extra={"step": step, "backend": settings.SOFIIA_IDEMPOTENCY_BACKEND, "error": str(exc)[:300]},
    )
