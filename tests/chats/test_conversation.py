"""What a node is asked for an operator message: the snapshot of the chat's settings and
context at the first attempt, and the body rebuilt from it (chats.conversation)."""

# Ukrainian text is what these tests are about.

from __future__ import annotations

import hashlib
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chats.conversation import ContextUnavailable, infer_body, infer_body_digest, infer_request_snapshot
from chats.models import Chat, Message
from nodes.infer import infer_body_bytes
from tests.chats.conversation_helpers import at, exchange, operator_message

pytestmark = pytest.mark.django_db


@pytest.fixture
def chat(alice):
    return Chat.objects.create(owner=alice.user, title="conversation", agent="echo", node="NODA1")


def snapshot_and_body(chat, message):
    chat.refresh_from_db()
    snapshot = infer_request_snapshot(chat=chat, message=message)
    return snapshot, infer_body(message=message, snapshot=snapshot)


def test_the_third_message_carries_the_two_earlier_exchanges_in_order_and_its_own_text_last(chat):
    chat.context_turns = 2
    chat.save()
    first = exchange(chat, "hello", "hi there", ts=at(0))
    second = exchange(chat, "how are you?", "fine", ts=at(10))
    third = operator_message(chat, "and now?", ts=at(20), status=Message.Status.PENDING)
    snapshot, body = snapshot_and_body(chat, third)
    assert snapshot == {
        "system_prompt": "",
        "model": None,
        "temperature": None,
        "max_tokens": None,
        "context": [[first[0].pk, first[1].pk], [second[0].pk, second[1].pk]],
    }
    assert list(body) == ["prompt", "model", "max_tokens", "temperature", "system_prompt", "messages"]
    assert body["messages"] == [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi there"},
        {"role": "user", "content": "how are you?"},
        {"role": "assistant", "content": "fine"},
        {"role": "user", "content": "and now?"},
    ]
    assert (
        body["prompt"]
        == "User: hello\n\nAssistant: hi there\n\nUser: how are you?\n\nAssistant: fine\n\nUser: and now?"
    )


def test_context_turns_bound_the_exchanges_to_the_newest(chat):
    chat.context_turns = 1
    chat.save()
    exchange(chat, "old", "old answer", ts=at(0))
    newest = exchange(chat, "recent", "recent answer", ts=at(10))
    message = operator_message(chat, "new", ts=at(20), status=Message.Status.PENDING)
    snapshot, body = snapshot_and_body(chat, message)
    assert snapshot["context"] == [[newest[0].pk, newest[1].pk]]
    assert [turn["content"] for turn in body["messages"]] == ["recent", "recent answer", "new"]


def test_with_no_context_turns_the_text_goes_alone(chat):
    chat.context_turns = 0
    chat.system_prompt = "Be brief."
    chat.model = "llama-3"
    chat.temperature = 0.2
    chat.max_tokens = 256
    chat.save()
    exchange(chat, "hello", "hi", ts=at(0))
    message = operator_message(chat, "just this", ts=at(10), status=Message.Status.PENDING)
    snapshot, body = snapshot_and_body(chat, message)
    assert snapshot["context"] == []
    assert body == {
        "prompt": "just this",
        "model": "llama-3",
        "max_tokens": 256,
        "temperature": 0.2,
        "system_prompt": "Be brief.",
        "messages": [{"role": "user", "content": "just this"}],
    }


def test_the_first_message_of_a_chat_is_asked_alone_with_a_null_system_prompt(chat):
    message = operator_message(chat, "first", ts=at(0), status=Message.Status.PENDING)
    snapshot, body = snapshot_and_body(chat, message)
    assert snapshot["context"] == []
    assert (body["prompt"], body["system_prompt"]) == ("first", None)


def test_failed_and_pending_messages_are_never_context(chat):
    delivered = exchange(chat, "delivered", "answer", ts=at(0))
    operator_message(chat, "failed one", ts=at(10), status=Message.Status.FAILED)
    operator_message(chat, "pending one", ts=at(20), status=Message.Status.PENDING)
    message = operator_message(chat, "new", ts=at(30), status=Message.Status.PENDING)
    snapshot, body = snapshot_and_body(chat, message)
    assert snapshot["context"] == [[delivered[0].pk, delivered[1].pk]]
    assert "failed one" not in json.dumps(body)
    assert "pending one" not in json.dumps(body)


def test_only_exchanges_before_the_message_count_even_when_rebuilt_later(chat):
    before = exchange(chat, "before", "answer before", ts=at(0))
    message = operator_message(chat, "the message", ts=at(10), status=Message.Status.FAILED)
    exchange(chat, "after", "answer after", ts=at(20))
    snapshot, body = snapshot_and_body(chat, message)
    assert snapshot["context"] == [[before[0].pk, before[1].pk]]
    assert "after" not in body["prompt"]


def test_equal_timestamps_are_ordered_by_id(chat):
    first = exchange(chat, "first", "one", ts=at(0))
    second = exchange(chat, "second", "two", ts=at(0))
    # Same timestamp as both exchanges' operator messages, but a higher id: after them.
    message = operator_message(chat, "third", ts=at(0), status=Message.Status.PENDING)
    snapshot, _ = snapshot_and_body(chat, message)
    assert snapshot["context"] == [[first[0].pk, first[1].pk], [second[0].pk, second[1].pk]]
    # And a message with the same timestamp but a lower id than an exchange does not see it.
    snapshot_of_first = infer_request_snapshot(chat=chat, message=first[0])
    assert snapshot_of_first["context"] == []


def test_the_budget_drops_the_oldest_exchanges_whole_and_never_cuts_the_new_text(chat, settings):
    settings.SOFIIA_CONTEXT_MAX_CHARS = 30
    exchange(chat, "a" * 10, "b" * 10, ts=at(0))  # 20 characters: does not fit after the newer one
    middle = exchange(chat, "c" * 5, "d" * 5, ts=at(10))  # 10
    newest = exchange(chat, "e" * 5, "f" * 10, ts=at(20))  # 15
    long_text = "z" * 5000
    message = operator_message(chat, long_text, ts=at(30), status=Message.Status.PENDING)
    snapshot, body = snapshot_and_body(chat, message)
    assert snapshot["context"] == [[middle[0].pk, middle[1].pk], [newest[0].pk, newest[1].pk]]
    assert body["messages"][-1] == {"role": "user", "content": long_text}
    assert body["prompt"].endswith("User: " + long_text)


def test_an_exchange_older_than_one_that_did_not_fit_is_left_out_too(chat, settings):
    settings.SOFIIA_CONTEXT_MAX_CHARS = 10
    exchange(chat, "a", "b", ts=at(0))  # would fit alone, but is older than the one that does not
    exchange(chat, "x" * 20, "y", ts=at(10))
    message = operator_message(chat, "new", ts=at(20), status=Message.Status.PENDING)
    snapshot, body = snapshot_and_body(chat, message)
    assert snapshot["context"] == []
    assert body["prompt"] == "new"


def test_the_body_is_rebuilt_from_the_snapshot_whatever_the_chat_says_now(chat):
    chat.system_prompt, chat.temperature = "first prompt", 1.0
    chat.save()
    earlier = exchange(chat, "q", "a", ts=at(0))
    message = operator_message(chat, "new", ts=at(10), status=Message.Status.PENDING)
    snapshot, body = snapshot_and_body(chat, message)
    message.infer_request = snapshot
    message.save(update_fields=["infer_request"])
    chat.system_prompt, chat.temperature, chat.context_turns = "changed", 0.5, 0
    chat.save()
    exchange(chat, "later", "later answer", ts=at(5))  # would be context if asked again now
    message.refresh_from_db()
    assert infer_body(message=message, snapshot=message.infer_request) == body
    assert body["system_prompt"] == "first prompt"
    assert body["temperature"] == 1.0
    assert message.infer_request["context"] == [[earlier[0].pk, earlier[1].pk]]


def test_a_snapshot_naming_a_message_of_another_chat_is_refused(chat, alice):
    other = Chat.objects.create(owner=alice.user, title="other", agent="echo", node="NODA1")
    foreign = exchange(other, "secret", "secret answer", ts=at(0))
    message = operator_message(chat, "new", ts=at(10), status=Message.Status.PENDING)
    snapshot = {**infer_request_snapshot(chat=chat, message=message), "context": [[foreign[0].pk, foreign[1].pk]]}
    with pytest.raises(ContextUnavailable):
        infer_body(message=message, snapshot=snapshot)


def test_the_digest_is_the_sha256_of_the_canonical_bytes(chat):
    message = operator_message(chat, "Привіт, Олено", ts=at(0), status=Message.Status.PENDING)
    _, body = snapshot_and_body(chat, message)
    assert infer_body_digest(body) == hashlib.sha256(infer_body_bytes(body)).hexdigest()
    assert infer_body_bytes(body).startswith('{"prompt":"Привіт, Олено","model":null'.encode())


def test_the_snapshot_is_one_query_however_long_the_chat(chat):
    chat.context_turns = 3
    chat.save()
    for number in range(30):
        exchange(chat, f"q{number}", f"a{number}", ts=at(number * 10))
    message = operator_message(chat, "new", ts=at(1000), status=Message.Status.PENDING)
    with CaptureQueriesContext(connection) as queries:
        snapshot = infer_request_snapshot(chat=chat, message=message)
    assert len(snapshot["context"]) == 3
    assert len(queries) == 1
    assert "LIMIT 3" in queries[0]["sql"]
