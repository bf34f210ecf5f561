"""What an audit event may hold: any content, made storable and bounded.

An event's text comes from clients and nodes (a user name, a model name, a query string).
Neither database stores every string (PostgreSQL refuses NUL, and nothing encodes a lone
surrogate as UTF-8), and an unbounded value turns one request into a row of megabytes. So
nothing reaches the chain as given: NUL and lone surrogates are escaped where they stand
(visible as ``\\u0000``, ``\\ud800``), long strings are cut with a marker that names their
original length, and nesting, item counts and the size of the whole are bounded. An event's
content can then never be the reason it fails to be written.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.http import QueryDict

from sofiia.lib.text import escape_unstorable

# A string value in details keeps this many characters; the rest is replaced by a marker.
MAX_STRING_CHARS = 1000
MAX_KEY_CHARS = 100
MAX_ITEMS = 100  # entries of one object or list
MAX_DEPTH = 8
# The whole of ``details``, encoded: past it, only a bounded preview of the encoding is kept.
MAX_DETAILS_CHARS = 16_000
# A query string is kept as a bounded copy: this many characters of parameters in all.
MAX_QUERY_CHARS = 1000
MAX_QUERY_VALUE_CHARS = 200


def bounded_text(value: str, *, limit: int = MAX_STRING_CHARS) -> str:
    """``value`` made storable and cut to at most ``limit`` characters, the cut marked with
    the original length."""
    text = escape_unstorable(value)
    if len(text) <= limit:
        return text
    marker = f"…[cut: {len(value):,} chars]"
    return text[: max(limit - len(marker), 0)] + marker


def column_text(value: str, *, max_length: int) -> str:
    """A value for a ``CharField`` of ``max_length``: storable, and cut to fit."""
    return bounded_text(value, limit=max_length)


class _Encoder(DjangoJSONEncoder):
    """Django's encoder (dates, decimals, UUIDs), and the text of anything else: no value
    can make an event unwritable."""

    def default(self, o: Any) -> Any:
        try:
            return super().default(o)
        except TypeError:
            return repr(o)


def _bounded(value: Any, depth: int) -> Any:
    """``value`` as bounded plain JSON values. Depth is bounded before anything is encoded:
    a structure nested ten thousand deep never reaches the encoder's recursion."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        # NaN and infinities: neither database stores them as JSON numbers.
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, str):
        return bounded_text(value)
    if isinstance(value, Mapping):
        if depth >= MAX_DEPTH:
            return f"…[cut: an object nested deeper than {MAX_DEPTH}]"
        items = list(value.items())
        bounded = {
            bounded_text(str(key), limit=MAX_KEY_CHARS): _bounded(item, depth + 1) for key, item in items[:MAX_ITEMS]
        }
        if len(items) > MAX_ITEMS:
            bounded["…"] = f"[cut: {len(items):,} entries]"
        return bounded
    if isinstance(value, list | tuple | set | frozenset):
        if depth >= MAX_DEPTH:
            return f"…[cut: a list nested deeper than {MAX_DEPTH}]"
        values = sorted(value, key=repr) if isinstance(value, set | frozenset) else list(value)
        bounded_list = [_bounded(item, depth + 1) for item in values[:MAX_ITEMS]]
        if len(values) > MAX_ITEMS:
            bounded_list.append(f"…[cut: {len(values):,} items]")
        return bounded_list
    return _bounded(json.loads(json.dumps(value, cls=_Encoder)), depth)


def bounded_details(details: Mapping[str, Any] | None) -> dict[str, Any]:
    """``details`` as plain JSON values that both databases store and give back unchanged,
    bounded (see the module's docstring)."""
    bounded = _bounded(dict(details or {}), 0)
    encoded = json.dumps(bounded, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    if len(encoded) <= MAX_DETAILS_CHARS:
        return bounded
    return {"cut": True, "size": len(encoded), "preview": bounded_text(encoded, limit=MAX_STRING_CHARS)}


def bounded_query(params: QueryDict) -> dict[str, Any]:
    """A bounded copy of a query string's parameters, for the record of a read: every
    parameter name and value storable and cut, at most ``MAX_QUERY_CHARS`` characters of them
    in all; what was left out is counted."""
    kept: dict[str, list[str]] = {}
    size = left_out = 0
    for name, values in params.lists():
        for value in values:
            key = bounded_text(name, limit=MAX_KEY_CHARS)
            text = bounded_text(value, limit=MAX_QUERY_VALUE_CHARS)
            if size + len(key) + len(text) > MAX_QUERY_CHARS:
                left_out += 1
                continue
            size += len(key) + len(text)
            kept.setdefault(key, []).append(text)
    query: dict[str, Any] = {"query": kept}
    if left_out:
        query["query_left_out"] = left_out
    return query
