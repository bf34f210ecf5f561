"""What an API token is on the wire and in the database (no app imports: DRF loads the
authentication class while the apps are still being imported)."""

from __future__ import annotations

import hashlib
import re

TOKEN_BYTES = 24  # 48 hex characters
# Tokens issued before they were hashed are 40 hex characters; they were kept as digests.
TOKEN_FORMAT = re.compile(r"^[0-9a-f]{40,64}$")


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
