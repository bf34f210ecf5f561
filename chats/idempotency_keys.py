"""The ``Idempotency-Key`` request header: 1 to 255 printable ASCII characters."""

from __future__ import annotations

import re

from django.http import HttpRequest

from sofiia.lib.errors import ApplicationError

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
_VALID_KEY = re.compile(r"^[\x20-\x7e]{1,255}$")


class IdempotencyKeyRequired(ApplicationError):
    code = "idempotency_key_required"


class IdempotencyKeyInvalid(ApplicationError):
    code = "idempotency_key_invalid"


def idempotency_key_from(request: HttpRequest) -> str:
    """The request's key, or a 400 error naming what is wrong with it."""
    raw = request.META.get("HTTP_IDEMPOTENCY_KEY")
    if raw is None or raw.strip() == "":
        raise IdempotencyKeyRequired("Send the Idempotency-Key header: 1 to 255 printable ASCII characters.")
    # WSGI hands header bytes over as latin-1; anything outside printable ASCII is refused.
    if not _VALID_KEY.match(raw):
        raise IdempotencyKeyInvalid("Idempotency-Key must be 1 to 255 printable ASCII characters.")
    return raw
