"""Text a database can store as it is: no NUL (PostgreSQL's ``text`` refuses it) and no lone
UTF-16 surrogate (no UTF-8 encoding exists for one). One definition for what comes from outside
— a node's answer (refused when it is not), an audit event's content (escaped so it always is)."""

from __future__ import annotations

import re

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def is_storable(value: str) -> bool:
    """Whether ``value`` can be stored and encoded as it is."""
    return _UNSTORABLE.search(value) is None


def escape_unstorable(value: str) -> str:
    """``value`` with NUL and lone surrogates written out as ``\\u0000``-style escapes."""
    return _UNSTORABLE.sub(lambda match: f"\\u{ord(match.group()):04x}", value)
