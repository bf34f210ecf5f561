"""DRF fields shared by the API's input serializers."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

# What ``str.strip`` takes away, as a regular-expression class spelled out: engines disagree
# on ``\s`` (Python's takes \x1c-\x1f, ECMAScript's \ufeff), and the OpenAPI description's
# patterns must mean to a client what they mean here.
WHITESPACE_CLASS = r"\t-\r\u001c- \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


def not_blank(text: str) -> None:
    """A text field's validator for a text kept as typed (``trim_whitespace=False``) that must
    still not be only whitespace; the OpenAPI description states it as a pattern."""
    if not text.strip():
        raise serializers.ValidationError("This field may not be blank.", code="blank")


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers and booleans instead of turning them into text."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)
