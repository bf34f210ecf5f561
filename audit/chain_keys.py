"""The secret keys of the audit chain's links (``SOFIIA_AUDIT_CHAIN_KEY``).

A link is an HMAC: without the key, nobody who can write the database — its owner included —
can make an edited or invented event verify. The key is never stored in the database; each
event stores only the id of the key that signed it, so keys can be rotated: the first key
signs, the others still verify older events.

``SOFIIA_AUDIT_CHAIN_KEY`` (or ``SOFIIA_AUDIT_CHAIN_KEY_FILE``) holds ``ID:SECRET[,ID:SECRET…]``
(id 1..32 of ``[A-Za-z0-9_.-]``, secret 32 characters or more). Without it the key is derived
from ``DJANGO_SECRET_KEY`` (its fallbacks verify older events), which is just as absent from
the database, but rotates with the secret key: give the chain a key of its own in production.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from functools import cache

from django.conf import settings


@dataclass(frozen=True)
class ChainKey:
    key_id: str
    secret: bytes
    derived: bool = False

    def sign(self, message: bytes) -> str:
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()


def _derived(secret_key: str) -> ChainKey:
    fingerprint = hashlib.sha256(secret_key.encode()).hexdigest()[:12]
    secret = hmac.new(secret_key.encode(), b"sofiia-console audit chain", hashlib.sha256).digest()
    return ChainKey(key_id=f"secret-key-{fingerprint}", secret=secret, derived=True)


@cache
def _keyring(configured: tuple[ChainKey, ...], secret_keys: tuple[str, ...]) -> tuple[ChainKey, ...]:
    derived = tuple(_derived(key) for key in secret_keys if key)
    return configured + derived if configured else derived


def chain_keys() -> tuple[ChainKey, ...]:
    """Every key that verifies, the signing one first."""
    configured = tuple(ChainKey(key_id, secret.encode()) for key_id, secret in settings.SOFIIA_AUDIT_CHAIN_KEYS)
    return _keyring(configured, (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS))


def signing_key() -> ChainKey:
    return chain_keys()[0]


def chain_key(key_id: str) -> ChainKey | None:
    return next((key for key in chain_keys() if key.key_id == key_id), None)
