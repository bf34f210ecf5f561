from __future__ import annotations


class IdConverter:
    """A database id: at most 18 digits, so it always fits a signed 64-bit column and a
    huge number in a URL is a 404 rather than an overflow inside the database driver."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)
