from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from chats.models import Chat, Message
from sofiia.lib.pagination import (
    InvalidCursor,
    InvalidLimit,
    Position,
    decode_cursor,
    encode_cursor,
    keyset_after,
    keyset_page,
    parse_limit,
)


@pytest.fixture
def chat(alice):
    return Chat.objects.create(owner=alice.user, title="t", agent="echo", node="NODA1")


def _messages(chat, count, ts):
    return [
        Message.objects.create(chat=chat, role="agent", text=f"m{i}", ts=ts, node="NODA1", status="delivered")
        for i in range(count)
    ]


def walk(queryset, *, limit, order="desc", on_page=None):
    seen, cursor = [], None
    while True:
        page = keyset_page(queryset, scope="s", limit=limit, cursor=cursor, order=order)
        seen += [m.pk for m in page.items]
        if on_page:
            on_page()
        if not page.next_cursor:
            return seen
        cursor = page.next_cursor


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 25, 26, 200])
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_rows_with_identical_timestamps_are_neither_repeated_nor_skipped(chat, limit, order):
    ts = timezone.now()
    rows = _messages(chat, 10, ts) + _messages(chat, 10, ts + timedelta(microseconds=1)) + _messages(chat, 5, ts)
    expected = sorted(rows, key=lambda m: (m.ts, m.pk), reverse=order == "desc")
    assert walk(Message.objects.filter(chat=chat), limit=limit, order=order) == [m.pk for m in expected]


def test_a_walk_is_stable_while_rows_are_inserted(chat):
    ts = timezone.now() - timedelta(hours=1)
    original = _messages(chat, 30, ts)
    inserted = []

    def insert_between_pages():
        # New rows: some share the timestamp of the rows being walked, some are newer.
        inserted.extend(_messages(chat, 2, ts))
        inserted.extend(_messages(chat, 1, timezone.now()))

    seen = walk(Message.objects.filter(chat=chat), limit=4, on_page=insert_between_pages)
    assert len(seen) == len(set(seen)), "a row was returned twice"
    original_ids = [m.pk for m in sorted(original, key=lambda m: m.pk, reverse=True)]
    assert [pk for pk in seen if pk in set(original_ids)] == original_ids
    # Rows that sort before the cursor (newer) are for the next walk; none are interleaved.
    assert set(seen) - set(original_ids) <= {m.pk for m in inserted}


def test_the_last_page_has_no_cursor_unless_following(chat):
    _messages(chat, 3, timezone.now())
    queryset = Message.objects.filter(chat=chat)
    assert keyset_page(queryset, scope="s", limit=5, cursor=None).next_cursor is None
    followed = keyset_page(queryset, scope="s", limit=5, cursor=None, order="asc", follow=True)
    assert followed.next_cursor is not None
    _messages(chat, 2, timezone.now())
    after = keyset_page(queryset, scope="s", limit=5, cursor=followed.next_cursor, order="asc", follow=True)
    assert len(after.items) == 2
    empty = keyset_page(queryset, scope="s", limit=5, cursor=after.next_cursor, order="asc", follow=True)
    assert empty.items == []
    assert empty.next_cursor == after.next_cursor


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: c[:-1] + ("A" if c[-1] != "A" else "B"),
        lambda c: "x" + c,
        lambda c: c.split(":")[0],
        lambda c: "",
        lambda c: "not-a-cursor",
        lambda c: encode_cursor("other-scope", Position(timezone.now(), 1), "desc"),
        lambda c: encode_cursor("s", Position(timezone.now(), 1), "asc"),
    ],
)
def test_tampered_cursors_are_refused(tamper):
    cursor = encode_cursor("s", Position(timezone.now(), 42), "desc")
    assert decode_cursor("s", cursor, "desc").id == 42
    bad = tamper(cursor)
    if bad == "":
        return  # an empty cursor means "from the start", not an error
    with pytest.raises(InvalidCursor):
        decode_cursor("s", bad, "desc")


def test_a_cursor_with_a_forged_payload_is_refused():
    from django.core import signing

    forged = signing.Signer(salt="sofiia.cursor:s").sign_object(["not a date", "x", "desc"])
    with pytest.raises(InvalidCursor):
        decode_cursor("s", forged, "desc")
    naive = signing.Signer(salt="sofiia.cursor:s").sign_object(["2026-01-01T00:00:00", 1, "desc"])
    with pytest.raises(InvalidCursor):
        decode_cursor("s", naive, "desc")


@pytest.mark.parametrize(("raw", "expected"), [(None, 50), ("", 50), ("1", 1), ("200", 200)])
def test_limits_within_bounds(raw, expected):
    assert parse_limit(raw) == expected


@pytest.mark.parametrize("raw", ["0", "201", "abc", "-5", "1.5", " ", "9" * 40])
def test_limits_out_of_bounds_are_refused(raw):
    with pytest.raises(InvalidLimit):
        parse_limit(raw)


def test_the_messages_api_refuses_bad_cursors_and_limits(alice):
    chat = alice.new_chat()
    path = f"/api/chats/{chat['id']}/messages"
    for params, error in [({"cursor": "garbage"}, "invalid_cursor"), ({"limit": "0"}, "invalid_limit"),
                          ({"limit": "201"}, "invalid_limit"), ({"limit": "x"}, "invalid_limit")]:  # fmt: skip
        response = alice.api.get(path, params)
        assert response.status_code == 400
        assert response.json()["error"] == error


def test_a_message_cursor_of_one_chat_is_refused_for_another(alice):
    one, two = alice.new_chat(), alice.new_chat()
    for i in range(3):
        Message.objects.create(chat_id=one["id"], role="agent", text=f"{i}", node="NODA1", status="delivered")
    cursor = alice.api.get(f"/api/chats/{one['id']}/messages", {"limit": 1}).json()["next_cursor"]
    response = alice.api.get(f"/api/chats/{two['id']}/messages", {"cursor": cursor})
    assert response.json()["error"] == "invalid_cursor"


def _seeded_chat(chat, count):
    start = timezone.now() - timedelta(days=1)
    Message.objects.bulk_create(
        Message(
            chat=chat,
            role="agent",
            text=f"m{i}",
            ts=start + timedelta(milliseconds=i),
            node="NODA1",
            status="delivered",
        )
        for i in range(count)
    )
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return list(Message.objects.filter(chat=chat).order_by("-ts", "-id").values_list("ts", "id"))


@pytest.mark.parametrize("depth", [0.1, 0.5, 0.9, 1.0])
def test_a_page_deep_in_a_chat_starts_the_index_range_at_the_cursor(chat, depth):
    """The plan seeks to the cursor in the (chat, ts, id) index: it neither walks the chat
    from its newest message nor sorts it (docs/performance.md, benchmark row 3)."""
    from django.db import connection

    rows = _seeded_chat(chat, 4000)
    ts, row_id = rows[min(int(len(rows) * depth), len(rows) - 1)]
    after = keyset_after(Message.objects.filter(chat=chat), Position(ts, row_id), order="desc")[:51]
    if connection.vendor == "postgresql":
        plan = after.explain(analyze=True)
        # On a small chat the planner may prefer a bitmap scan and a sort of what is left;
        # either way the index range is bounded by the cursor (benchmark row 3 shows the
        # plain index scan at a million rows).
        assert "Index Scan on message_chat_ts_idx" in plan or "Index Scan using message_chat_ts_idx" in plan, plan
        assert "ts <=" in plan.split("Index Cond:")[1].splitlines()[0], plan
        removed = [int(line.split(":")[1]) for line in plan.splitlines() if "Rows Removed by Filter" in line]
        assert sum(removed) <= 1, plan
    else:
        plan = after.explain()
        assert "USING INDEX message_chat_ts_idx (chat_id=? AND ts<?)" in plan, plan
        assert "TEMP B-TREE" not in plan, plan
    expected = [pk for _, pk in rows[min(int(len(rows) * depth), len(rows) - 1) + 1 :][:51]]
    assert [m.pk for m in after] == expected


def test_issued_cursors_have_the_described_shape_and_others_are_refused():
    import re

    from sofiia.lib.pagination import CURSOR_PATTERN, MAX_CURSOR_LENGTH

    latest = timezone.now().replace(year=9999)
    for position in (Position(timezone.now(), 1), Position(latest, 2**63 - 1)):
        for order in ("asc", "desc"):
            cursor = encode_cursor("s", position, order)
            assert re.fullmatch(CURSOR_PATTERN, cursor)
            assert len(cursor) <= MAX_CURSOR_LENGTH
    for bad in ("a" * 401 + ":" + "b" * 43, "abc:def", "a b:" + "c" * 43, "ab:" + "c" * 43 + "\n"):
        with pytest.raises(InvalidCursor):
            decode_cursor("s", bad, "desc")
