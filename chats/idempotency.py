"""Idempotent sends: the rules one key follows, and its record in the idempotency cache.

Follows the IETF ``Idempotency-Key`` header draft and Stripe's behaviour:

- A key is 1 to 255 printable ASCII characters (:func:`checked_key`), scoped to operator +
  chat + key. Two sends are the same request when their texts are equal
  (:func:`request_fingerprint`, the one definition the database guard in ``chats.services``
  uses too).
- The first send claims the key with an atomic add (``SET NX`` in Redis) and goes on to the
  pipeline. A delivered send is recorded for ``SOFIIA_IDEMPOTENCY_TTL`` seconds as its two
  message ids, never its body: a replay is rebuilt from the database. Any refusal or failure
  releases the claim, so 4xx, 409, 429 and 5xx answers are never replayed and the client may
  simply retry.
- The same key and text again → the recorded outcome, marked replayed; the node is not
  called, nothing is stored, no rate limit is spent. Another text → 422. While the first
  send still runs → 409 with ``Retry-After``.
- A claim lapses after the delivery lease (infer timeout + margin), so a worker that died
  holding it cannot block the key for longer than that.

``chats.middleware.IdempotencyMiddleware`` applies these rules in front of the two send
views. The cache is only the fast path: the database guards exactly-once on its own (see
``chats.services.message_send``), so whether the cache is flushed, restarted, unreachable,
full or ``inmemory`` in several processes, a key never yields a second message or node call.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import caches

from chats.errors import IdempotencyKeyInFlight, IdempotencyKeyInvalid, IdempotencyKeyRequired, IdempotencyKeyReused
from chats.metrics import IDEMPOTENCY_BACKEND_ERRORS
from sofiia.lib.cache_errors import cache_backend_errors
from sofiia.lib.cache_ops import cache_get_or_add
from sofiia.lib.clock import clock_now

logger = logging.getLogger(__name__)

CACHE_ALIAS = "idempotency"
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
IN_FLIGHT_RETRY_AFTER_SECONDS = 1
_VALID_KEY = re.compile(r"^[\x20-\x7e]{1,255}$")


def checked_key(raw: str | None) -> str:
    """The key as sent, or the contract's refusal of a missing or malformed one."""
    if raw is None or raw.strip() == "":
        raise IdempotencyKeyRequired(f"Send the {IDEMPOTENCY_KEY_HEADER} header: 1 to 255 printable ASCII characters.")
    # WSGI hands header bytes over as latin-1; anything outside printable ASCII is refused.
    if not _VALID_KEY.match(raw):
        raise IdempotencyKeyInvalid(f"{IDEMPOTENCY_KEY_HEADER} must be 1 to 255 printable ASCII characters.")
    return raw


def delivery_lease_seconds() -> float:
    """How long a delivery may stay in flight before another attempt may take it over.

    A worker that dies mid-call leaves its claim and its ``pending`` message behind; after
    the infer timeout plus a margin for the database writes around the call, the attempt is
    certainly over.
    """
    return float(settings.SOFIIA_INFER_TIMEOUT) + 15.0


def request_fingerprint(text: str) -> str:
    """What makes two sends with one key the same request: their text."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def in_flight_error() -> IdempotencyKeyInFlight:
    return IdempotencyKeyInFlight(
        "A request with this Idempotency-Key is still being processed; retry shortly.",
        headers={"Retry-After": str(IN_FLIGHT_RETRY_AFTER_SECONDS)},
    )


def reused_error() -> IdempotencyKeyReused:
    return IdempotencyKeyReused("This Idempotency-Key was already used with a different text.")


def cache_key(*, operator_id: int, chat_id: int, key: str) -> str:
    digest = hashlib.sha256(key.encode("ascii", "replace")).hexdigest()
    return f"send:{operator_id}:{chat_id}:{digest}"


@dataclass(frozen=True)
class Delivered:
    """A delivery the cache remembers: the ids of the operator message and its reply."""

    operator_message_id: int
    reply_id: int


@dataclass
class IdempotencyClaim:
    """A send's hold on its key in the cache, from its claim to its answer."""

    cache_key: str
    fingerprint: str
    claim_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    # Set when the cache already knows the delivery: it is replayed.
    delivered: Delivered | None = None
    claimed: bool = False

    def complete(self, delivered: Delivered) -> None:
        """Record the delivery, so the key replays it from now on."""
        record = {
            "state": "done",
            "fingerprint": self.fingerprint,
            "operator_message_id": delivered.operator_message_id,
            "reply_id": delivered.reply_id,
        }
        try:
            caches[CACHE_ALIAS].set(self.cache_key, record, timeout=settings.SOFIIA_IDEMPOTENCY_TTL)
        except cache_backend_errors() as exc:
            _backend_failed("complete", exc)
        self.claimed = False

    def release(self) -> None:
        """Give the key up after a refusal or a failure (only our own claim: after a lapse
        the key may belong to a newer send)."""
        if not self.claimed:
            return
        self.claimed = False
        cache = caches[CACHE_ALIAS]
        try:
            current = cache.get(self.cache_key)
            if current is not None and current.get("claim_id") == self.claim_id:
                cache.delete(self.cache_key)
        except cache_backend_errors() as exc:
            _backend_failed("release", exc)


def idempotency_claim(*, operator_id: int, chat_id: int, key: str, text: str) -> IdempotencyClaim:
    """Claim the key, or learn that the cache already knows the answer (``delivered``).

    Raises 422 for the key with another text, 409 while another send holds it. When the
    cache cannot be reached the send goes on unclaimed: the database guard still prevents a
    duplicate, and the failure is logged and counted.
    """
    claim = IdempotencyClaim(
        cache_key=cache_key(operator_id=operator_id, chat_id=chat_id, key=key), fingerprint=request_fingerprint(text)
    )
    try:
        _claim(claim)
    except cache_backend_errors() as exc:
        _backend_failed("claim", exc)
    return claim


def _claim(claim: IdempotencyClaim) -> None:
    cache = caches[CACHE_ALIAS]
    lease = delivery_lease_seconds()
    for _ in range(3):
        record = {
            "state": "in_flight",
            "fingerprint": claim.fingerprint,
            "claim_id": claim.claim_id,
            "claimed_at": clock_now().timestamp(),
        }
        # A fresh key (the common case) is claimed in one step; a known one is read in the same.
        added, found = cache_get_or_add(cache, claim.cache_key, record, timeout=lease)
        if added:
            claim.claimed = True
            return
        if found is None:
            continue  # the record went between the two steps of a backend without a single one
        if found.get("fingerprint") != claim.fingerprint:
            raise reused_error()
        if found.get("state") == "done":
            claim.delivered = Delivered(found["operator_message_id"], found["reply_id"])
            return
        if clock_now().timestamp() - found.get("claimed_at", 0.0) < lease:
            raise in_flight_error()
        # The claim outlived its lease (its worker died): drop it and claim afresh. If two
        # sends do this at once, the database guard lets only one of them deliver.
        cache.delete(claim.cache_key)
    # The key changed hands repeatedly while we looked: let the database decide.


def _backend_failed(step: str, exc: BaseException) -> None:
    IDEMPOTENCY_BACKEND_ERRORS.inc()
    logger.error(
        "idempotency.backend_error",
        extra={"step": step, "backend": settings.SOFIIA_IDEMPOTENCY_BACKEND, "error": str(exc)[:300]},
    )
