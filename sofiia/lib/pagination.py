"""Keyset pagination over a composite ``(timestamp, id)`` order.

Rows with equal timestamps are ordered by id, so a page boundary that falls inside a run
of equal timestamps neither repeats nor skips a row, and rows inserted while a client
walks the pages cannot shift the pages it has not read yet. Cursors are signed, so a
client can neither forge a position nor reuse a cursor of one listing in another.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

from django.core import signing
from django.db.models import Model, Q, QuerySet

from sofiia.lib.errors import ApplicationError

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# What ``encode_cursor`` makes (``django.core.signing``: the URL-safe base64 of the position,
# ``.``-prefixed when compressed, ``:`` and the 43-character SHA-256 signature), with room to
# spare; the OpenAPI description states both. Anything else is refused before it is unsigned.
CURSOR_PATTERN = r"^\.?[A-Za-z0-9_-]{1,400}:[A-Za-z0-9_-]{43}$"
MAX_CURSOR_LENGTH = 445
_CURSOR_SHAPE = re.compile(CURSOR_PATTERN)

Order = Literal["asc", "desc"]
M = TypeVar("M", bound=Model)


class InvalidCursor(ApplicationError):
    code = "invalid_cursor"


class InvalidLimit(ApplicationError):
    code = "invalid_limit"


@dataclass(frozen=True)
class Position:
    ts: datetime
    id: int


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_cursor: str | None


def parse_limit(raw: str | None, *, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    if raw is None or raw == "":
        return default
    try:
        limit = int(raw)
    except ValueError:
        raise InvalidLimit(f"limit must be an integer from 1 to {maximum}.") from None
    if not 1 <= limit <= maximum:
        raise InvalidLimit(f"limit must be an integer from 1 to {maximum}.")
    return limit


def _signer(scope: str) -> signing.Signer:
    return signing.Signer(salt=f"sofiia.cursor:{scope}")


def encode_cursor(scope: str, position: Position, order: Order) -> str:
    return _signer(scope).sign_object([position.ts.isoformat(), position.id, order])


def decode_cursor(scope: str, token: str, order: Order) -> Position:
    if len(token) > MAX_CURSOR_LENGTH or not _CURSOR_SHAPE.fullmatch(token):
        raise InvalidCursor("The cursor is malformed or was not issued for this listing.")
    try:
        ts_text, row_id, cursor_order = _signer(scope).unsign_object(token)
        position = Position(ts=datetime.fromisoformat(ts_text), id=int(row_id))
    except (signing.BadSignature, ValueError, TypeError):
        raise InvalidCursor("The cursor is malformed or was not issued for this listing.") from None
    if cursor_order != order or position.ts.tzinfo is None:
        raise InvalidCursor("The cursor was issued for another order.")
    return position


def keyset_after(queryset: QuerySet[M], position: Position, *, order: Order, ts_field: str = "ts") -> QuerySet[M]:
    """``queryset`` from just after ``position``, in ``(ts_field, id)`` order, unsliced."""
    # The leading range term is redundant, but it is the one an index can seek to: without
    # it PostgreSQL walks the index from the newest row and filters its way to the cursor.
    if order == "desc":
        after = Q(**{f"{ts_field}__lt": position.ts}) | Q(**{ts_field: position.ts, "id__lt": position.id})
        queryset = queryset.filter(Q(**{f"{ts_field}__lte": position.ts}) & after)
    else:
        after = Q(**{f"{ts_field}__gt": position.ts}) | Q(**{ts_field: position.ts, "id__gt": position.id})
        queryset = queryset.filter(Q(**{f"{ts_field}__gte": position.ts}) & after)
    return _keyset_ordered(queryset, order=order, ts_field=ts_field)


def _keyset_ordered(queryset: QuerySet[M], *, order: Order, ts_field: str) -> QuerySet[M]:
    sign = "-" if order == "desc" else ""
    return queryset.order_by(f"{sign}{ts_field}", f"{sign}id")


def keyset_page(
    queryset: QuerySet[M],
    *,
    scope: str,
    limit: int,
    cursor: str | None,
    order: Order = "desc",
    ts_field: str = "ts",
    follow: bool = False,
) -> Page:
    """One page of ``queryset`` in ``(ts_field, id)`` order, after ``cursor``.

    ``scope`` names the listing (and its filters) the cursor belongs to. With ``follow``,
    the last page still carries a cursor, so a reader polling forward (``order="asc"``)
    resumes exactly where it stopped.
    """
    if cursor:
        queryset = keyset_after(queryset, decode_cursor(scope, cursor, order), order=order, ts_field=ts_field)
    else:
        queryset = _keyset_ordered(queryset, order=order, ts_field=ts_field)
    rows = list(queryset[: limit + 1])
    has_more = len(rows) > limit
    items = rows[:limit]
    if items and (has_more or follow):
        last = items[-1]
        return Page(items, encode_cursor(scope, Position(getattr(last, ts_field), last.pk), order))
    if follow and cursor:
        return Page(items, cursor)
    return Page(items, None)
