"""The ``X-Audit-Key`` header: the only credential of the audit API.

The supplied key is compared with every configured key (``SOFIIA_AUDIT_KEYS``), each in
constant time and all of them every time, so neither the comparison nor the number of
keys tried tells a caller anything. Nothing else counts: not the client address, not a
session, not a bearer token, not ``DEBUG``.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest

from sofiia.lib.errors import ApplicationError

AUDIT_KEY_HEADER = "X-Audit-Key"
FINGERPRINT_LENGTH = 12


class AuditKeyRequired(ApplicationError):
    status = 401
    code = "audit_key_required"


class AuditKeyInvalid(ApplicationError):
    status = 401
    code = "audit_key_invalid"


@dataclass(frozen=True)
class AuditReader:
    """Who reads the audit trail: known only by the fingerprint of the key they hold."""

    fingerprint: str

    @property
    def actor(self) -> str:
        return f"audit-key:{self.fingerprint}"


def key_fingerprint(key: str) -> str:
    """A short SHA-256 prefix that tells keys apart in the audit trail without revealing them."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:FINGERPRINT_LENGTH]


def _digest(value: str) -> bytes:
    # Comparing digests keeps the comparison constant-time whatever the keys' lengths.
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


_CHALLENGE = {"WWW-Authenticate": f'{AUDIT_KEY_HEADER} realm="audit"'}


def audit_reader_from(request: HttpRequest) -> AuditReader:
    """The reader a request's ``X-Audit-Key`` identifies, or a 401 error."""
    supplied = request.headers.get(AUDIT_KEY_HEADER, "")
    if not supplied.strip():
        raise AuditKeyRequired(f"Send the {AUDIT_KEY_HEADER} header.", headers=_CHALLENGE)
    supplied_digest = _digest(supplied)
    matched: str | None = None
    for key in settings.SOFIIA_AUDIT_KEYS:
        if hmac.compare_digest(supplied_digest, _digest(key)) and matched is None:
            matched = key
    if matched is None:
        raise AuditKeyInvalid(f"The {AUDIT_KEY_HEADER} is not valid.", headers=_CHALLENGE)
    return AuditReader(fingerprint=key_fingerprint(matched))
