"""manage.py audit_prompt MESSAGE_ID: the infer body rebuilt from the stored messages and the
message's snapshot, proved against the message.send audit event's infer_sha256.

The send path keeps the snapshot and the digest (tests.chats.conversation_helpers.record_send
does what it does), so these tests hold for any send that stores them."""

# Ukrainian text is what these tests are about.
# ruff: noqa: RUF001

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.actions import AuditOutcome
from chats.models import Chat, Message
from tests.chats.conversation_helpers import at, exchange, operator_message, record_send


@pytest.fixture
def chat(alice):
    return Chat.objects.create(
        owner=alice.user,
        title="proof",
        agent="echo",
        node="NODA1",
        system_prompt="Відповідай коротко.",
        temperature=0.3,
    )


@pytest.fixture
def sent(chat):
    """Two delivered exchanges, then a third message whose send is recorded with its proof."""
    first = exchange(chat, "Хто така Олена?", "Інженерка.", ts=at(0))
    second = exchange(chat, "Де вона?", "У Львові.", ts=at(10))
    message = operator_message(chat, "А зараз?", ts=at(20))
    digest = record_send(chat, message)
    return message, digest, [first, second]


def audit_prompt(message_id):
    out = StringIO()
    call_command("audit_prompt", str(message_id), stdout=out)
    return out.getvalue()


def test_a_recorded_send_is_verified_and_its_body_printed(sent):
    message, digest, _ = sent
    output = audit_prompt(message.pk)
    body_text, _, verdict = output.rpartition("\n" + "verified")
    body = json.loads(body_text)
    assert body["messages"][-1] == {"role": "user", "content": "А зараз?"}
    assert [turn["content"] for turn in body["messages"][:4]] == [
        "Хто така Олена?", "Інженерка.", "Де вона?", "У Львові.",
    ]  # fmt: skip
    assert body["system_prompt"] == "Відповідай коротко."
    assert digest in verdict


def test_a_retry_that_failed_first_is_verified_across_both_events(chat):
    exchange(chat, "one", "two", ts=at(0))
    message = operator_message(chat, "three", ts=at(10))
    first = record_send(chat, message, outcome=AuditOutcome.FAILED)
    chat.system_prompt = "changed between the attempts"
    chat.save()
    assert record_send(chat, message) == first
    assert "verified" in audit_prompt(message.pk)


def test_a_tampered_context_message_fails_the_proof(sent):
    message, _, (first, _) = sent
    Message.objects.filter(pk=first[1].pk).update(text="Шпигунка.")
    with pytest.raises(CommandError, match="MISMATCH"):
        audit_prompt(message.pk)


def test_a_tampered_snapshot_fails_the_proof(sent):
    message, _, _ = sent
    message.infer_request["temperature"] = 1.9
    message.save(update_fields=["infer_request"])
    with pytest.raises(CommandError, match="MISMATCH"):
        audit_prompt(message.pk)


def test_a_tampered_message_text_fails_the_proof(sent):
    message, _, _ = sent
    Message.objects.filter(pk=message.pk).update(text="А вчора?")
    with pytest.raises(CommandError, match="MISMATCH"):
        audit_prompt(message.pk)


def test_a_message_without_a_delivered_event_is_not_verified(chat):
    message = operator_message(chat, "never proved", ts=at(0))
    record_send(chat, message, outcome=AuditOutcome.FAILED)
    with pytest.raises(CommandError, match=r"no delivered message\.send audit event"):
        audit_prompt(message.pk)


def test_a_message_without_a_snapshot_is_refused(chat):
    message = operator_message(chat, "old style", ts=at(0))
    with pytest.raises(CommandError, match="no stored infer request"):
        audit_prompt(message.pk)


def test_an_agent_message_is_refused_naming_its_operator_message(sent):
    _, _, (first, _) = sent
    with pytest.raises(CommandError, match=f"agent message.*\\({first[0].pk}\\)"):
        audit_prompt(first[1].pk)


def test_an_unknown_message_is_refused(db):
    with pytest.raises(CommandError, match="does not exist"):
        audit_prompt(999999)


def test_a_deleted_context_message_is_reported(sent, chat):
    message, _, _ = sent
    message.infer_request["context"][0][1] = 10**9
    message.save(update_fields=["infer_request"])
    with pytest.raises(CommandError, match="not in its chat"):
        audit_prompt(message.pk)
