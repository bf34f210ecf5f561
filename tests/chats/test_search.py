"""Search: chat titles (GET /api/chats?q=) and message texts (GET /api/search), letter case
ignored in every script on both databases, served by an index (chats.search)."""

# Ukrainian text is what these tests are about.
# ruff: noqa: RUF001

from __future__ import annotations

import hashlib

import pytest
from django.db import connection

from chats.models import Chat, Message
from chats.search import PG_TRIGRAM_INDEX, SQLITE_FTS_TABLE
from chats.selectors import message_search_for_operator
from tests.chats.conversation_helpers import at, exchange, operator_message


def chat_of(persona, title="chat"):
    return Chat.objects.create(owner=persona.user, title=title, agent="echo", node="NODA1")


@pytest.mark.parametrize("query", ["Олена", "олена", "ОЛЕНА", "оЛеНа", "лен"])
def test_ukrainian_text_is_found_whatever_the_letter_case(alice, query):
    chat = chat_of(alice)
    question, reply = exchange(chat, "Де зараз Олена?", "Олена у Львові", ts=at(0))
    exchange(chat, "Де Петро?", "Петро вдома", ts=at(10))
    response = alice.api.get("/api/search", {"q": query})
    assert response.status_code == 200, response.content
    items = response.json()["items"]
    assert [item["message"]["id"] for item in items] == [reply.pk, question.pk]
    assert items[0]["chat"]["id"] == chat.pk
    assert items[0]["message"]["text"] == "Олена у Львові"


def test_titles_are_searched_whatever_the_letter_case(alice):
    alice.new_chat(title="Звіт для ОЛЕНИ")
    alice.new_chat(title="Release notes")
    alice.new_chat(title="Straße")
    for query, titles in [
        ("олени", ["Звіт для ОЛЕНИ"]),
        ("ЗВІТ", ["Звіт для ОЛЕНИ"]),
        ("release", ["Release notes"]),
        ("STRASSE", ["Straße"]),
        ("nothing", []),
    ]:
        response = alice.api.get("/api/chats", {"q": query})
        assert response.status_code == 200
        assert [chat["title"] for chat in response.json()["items"]] == titles, query


def test_a_renamed_chat_is_found_by_its_new_title(alice):
    chat = alice.new_chat(title="old")
    alice.api.patch(f"/api/chats/{chat['id']}", {"title": "Нова назва"}, format="json")
    assert [c["id"] for c in alice.api.get("/api/chats", {"q": "НОВА"}).json()["items"]] == [chat["id"]]


def test_like_wildcards_in_the_query_are_plain_characters(alice):
    chat = chat_of(alice)
    exact = operator_message(chat, "100% done_now", ts=at(0))
    operator_message(chat, "1000 done now", ts=at(1))
    assert [i["message"]["id"] for i in alice.api.get("/api/search", {"q": "0% done_"}).json()["items"]] == [exact.pk]
    assert alice.api.get("/api/search", {"q": "%"}).json()["items"][0]["message"]["id"] == exact.pk
    assert len(alice.api.get("/api/search", {"q": "_"}).json()["items"]) == 1
    quoted = operator_message(chat, 'he said "hi" there', ts=at(2))
    assert [i["message"]["id"] for i in alice.api.get("/api/search", {"q": '"hi" th'}).json()["items"]] == [quoted.pk]


def test_only_the_operators_own_messages_are_searched(alice, bob):
    exchange(chat_of(bob), "секретний план", "план прийнято", ts=at(0))
    mine = operator_message(chat_of(alice), "мій план", ts=at(1))
    assert [i["message"]["id"] for i in alice.api.get("/api/search", {"q": "план"}).json()["items"]] == [mine.pk]
    assert [c["title"] for c in bob.api.get("/api/chats", {"q": "chat"}).json()["items"]] == ["chat"]


def test_short_queries_are_answered_too(alice):
    chat = chat_of(alice)
    hit = operator_message(chat, "ok Я", ts=at(0))
    operator_message(chat, "nothing", ts=at(1))
    assert [i["message"]["id"] for i in alice.api.get("/api/search", {"q": "я"}).json()["items"]] == [hit.pk]
    assert [i["message"]["id"] for i in alice.api.get("/api/search", {"q": "K "}).json()["items"]] == [hit.pk]


def test_results_are_newest_first_and_paged_without_repeats_or_gaps(alice):
    chat = chat_of(alice)
    ids = [operator_message(chat, f"needle {n}", ts=at(n // 3), status=Message.Status.DELIVERED).pk for n in range(12)]
    operator_message(chat, "hay", ts=at(100))
    seen, cursor = [], None
    while True:
        params = {"q": "NEEDLE", "limit": 5, **({"cursor": cursor} if cursor else {})}
        body = alice.api.get("/api/search", params).json()
        seen += [item["message"]["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)


def test_a_cursor_of_another_search_is_refused(alice):
    chat = chat_of(alice)
    for n in range(3):
        operator_message(chat, f"needle {n}", ts=at(n))
    cursor = alice.api.get("/api/search", {"q": "needle", "limit": 1}).json()["next_cursor"]
    response = alice.api.get("/api/search", {"q": "need", "limit": 1, "cursor": cursor})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_cursor"


@pytest.mark.parametrize("params", [{}, {"q": ""}, {"q": "x" * 201}, {"q": "a\x00b"}])
def test_a_query_of_the_wrong_length_is_invalid_input(alice, params):
    response = alice.api.get("/api/search", params)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_input"


@pytest.mark.parametrize("params", [{"q": ""}, {"q": "x" * 201}])
def test_a_title_query_of_the_wrong_length_is_invalid_input(alice, params):
    response = alice.api.get("/api/chats", params)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_input"


def test_search_needs_an_operator(anonymous):
    assert anonymous.get("/api/search", {"q": "x"}).status_code == 401


def test_messages_written_in_bulk_are_found_too(alice):
    chat = chat_of(alice)
    Message.objects.bulk_create(
        [Message(chat=chat, role="operator", text="Масове ПОВІДОМЛЕННЯ", ts=at(0), node="NODA1", status="delivered")]
    )
    assert len(alice.api.get("/api/search", {"q": "масове повідомлення"}).json()["items"]) == 1


def _plan(queryset):
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # A few thousand short rows fit in a few pages, where reading them all is cheapest;
            # the question is which index serves the query once reading all is not an option.
            cursor.execute("SET enable_seqscan = off")
            try:
                cursor.execute("EXPLAIN " + sql, params)
                rows = cursor.fetchall()
            finally:
                cursor.execute("RESET enable_seqscan")
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
            rows = cursor.fetchall()
    return "\n".join(" ".join(str(column) for column in row) for row in rows)


@pytest.mark.django_db(transaction=True)
def test_a_message_search_is_served_by_the_index(alice):
    chat = chat_of(alice)
    Message.objects.bulk_create(
        Message(chat=chat, role="operator", text="note " + hashlib.sha256(str(n).encode()).hexdigest(), ts=at(n),
                node="NODA1", status="delivered")
        for n in range(3000)
    )  # fmt: skip
    if connection.vendor == "postgresql":
        # What autovacuum does to a table this size: statistics, and the GIN index's pending
        # list merged (the planner prices a long pending list as a scan of its own).
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE chats_message")
    wanted = "note " + hashlib.sha256(b"1234").hexdigest()
    queryset = message_search_for_operator(operator=alice.user, query=wanted[10:20].upper()).order_by("-ts", "-id")
    plan = _plan(queryset[:51])
    if connection.vendor == "postgresql":
        assert PG_TRIGRAM_INDEX in plan, plan
    else:
        assert "VIRTUAL TABLE INDEX" in plan, plan
        assert SQLITE_FTS_TABLE in plan, plan
    assert [message.text for message in queryset[:51]] == [wanted]


def test_a_short_message_search_reads_only_the_operators_chats(alice):
    chat = chat_of(alice)
    operator_message(chat, "ab", ts=at(0))
    plan = _plan(message_search_for_operator(operator=alice.user, query="A").order_by("-ts", "-id")[:51])
    if connection.vendor == "sqlite":
        assert "SEARCH chats_chat USING" in plan, plan
        assert "SEARCH chats_message USING" in plan, plan
        assert "SCAN chats_message" not in plan, plan
    else:
        assert "Seq Scan on chats_message" not in plan, plan
