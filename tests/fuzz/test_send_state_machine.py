"""A Hypothesis state machine over the send pipeline: sends with new and reused keys, replays,
retries after node failures and timeouts, an idempotency cache that forgets everything, and a
worker that dies mid-send and whose lease runs out. After every step the database is checked
against a model of the idempotency rules (Stripe's promises):

- one key yields at most one operator message, whatever happens;
- a delivered key always answers the same 201 body, marked replayed, without calling the node;
- the same key with another text is 422, and changes nothing;
- a failed delivery is retried on the same message (its attempts count every node call);
- a key held by a live attempt is 409 until its lease runs out, then delivered once;
- every delivered operator message has exactly one reply; no other message has one.

Runs in process through the real pipeline and database; only the node is a stand-in.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.db import connection
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from chats import services
from chats.idempotency import delivery_lease_seconds
from chats.models import Chat, Message
from nodes.infer import InferResult, NodeTimeout, NodeUnavailable
from sofiia.lib.clock import clock_advance, clock_now, clock_reset
from tests.caches import clear_caches
from tests.live import PROJECT
from tests.personas import Persona

pytestmark = pytest.mark.fuzz

KEYS = ("k-a", "k-b", "k-c", "k-d")
TEXTS = ("hello", "status?", "hello ")
EXAMPLES = int(os.environ.get("SOFIIA_STATE_MACHINE_EXAMPLES", "100"))
STEPS = 30


@dataclass
class KeyModel:
    text: str
    state: str  # delivered | failed | crashed
    attempts: int
    node_calls: int
    body: dict | None = None
    crashed_at: float = 0.0


@dataclass
class Node:
    mode: str = "ok"  # ok | fail | timeout
    calls: list[str] = field(default_factory=list)

    def infer(self, *, node: str, agent: str, body: Mapping[str, Any], **kwargs: object) -> InferResult:
        prompt = str(body["prompt"])
        self.calls.append(prompt)
        if self.mode == "fail":
            raise NodeUnavailable(node, "http_status", "answered HTTP 500")
        if self.mode == "timeout":
            raise NodeTimeout(node, "timeout", "no answer within 30 s")
        return InferResult(response=f"reply to {prompt}", model="m", tokens_used=1, backend="b")


class SendMachine(RuleBasedStateMachine):
    persona: Persona
    node: Node
    # Across all examples, for the figures in docs/reliability.md.
    examples = 0
    requests = 0

    def __init__(self) -> None:
        super().__init__()
        clear_caches()
        clock_reset()
        self.node.calls.clear()
        self.node.mode = "ok"
        chat = Chat.objects.create(owner=self.persona.user, title="machine", agent="echo", node="NODA1")
        self.chat_id = chat.pk
        # Keys are per example: the test database outlives examples.
        self.prefix = uuid.uuid4().hex[:8]
        self.model: dict[str, KeyModel] = {}
        SendMachine.examples += 1

    def key(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def post(self, name: str, text: str):
        SendMachine.requests += 1
        return self.persona.send(self.chat_id, text, key=self.key(name))

    # --- rules -----------------------------------------------------------------------------

    @rule(mode=st.sampled_from(["ok", "fail", "timeout"]))
    def node_changes(self, mode: str) -> None:
        self.node.mode = mode

    @rule()
    def the_idempotency_cache_forgets_everything(self) -> None:
        clear_caches()

    @rule(name=st.sampled_from(KEYS), text=st.sampled_from(TEXTS))
    def send(self, name: str, text: str) -> None:
        known = self.model.get(name)
        calls_before = len(self.node.calls)
        response = self.post(name, text)
        body = response.json()
        if known is not None and known.text != text:
            assert response.status_code == 422, body
            assert body["error"] == "idempotency_key_reused"
            assert len(self.node.calls) == calls_before
            return
        if known is not None and known.state == "delivered":
            assert response.status_code == 201, body
            assert response["Idempotent-Replayed"] == "true"
            assert body == known.body
            assert len(self.node.calls) == calls_before
            return
        if known is not None and known.state == "crashed" and self._within_lease(known):
            assert response.status_code == 409, body
            assert body["error"] == "idempotency_key_in_flight"
            assert response["Retry-After"]
            assert len(self.node.calls) == calls_before
            return
        # A new key, a failed one, or a crashed one whose lease ran out: the node is called once.
        assert len(self.node.calls) == calls_before + 1, body
        attempts = (known.attempts if known else 0) + 1
        node_calls = (known.node_calls if known else 0) + 1
        if self.node.mode == "ok":
            assert response.status_code == 201, body
            assert "Idempotent-Replayed" not in response
            self.model[name] = KeyModel(text, "delivered", attempts, node_calls, body=body)
        else:
            assert response.status_code == (504 if self.node.mode == "timeout" else 502), body
            assert body["operator_message"]["status"] == "failed"
            self.model[name] = KeyModel(text, "failed", attempts, node_calls)
        if known is not None:
            assert body["operator_message"]["id"] == self._message(name).pk

    @precondition(lambda self: any(name not in self.model for name in KEYS))
    @rule(data=st.data())
    def a_worker_dies_mid_send(self, data: st.DataObject) -> None:
        """A send stored its message as pending, then its worker died before the node answered."""
        name = data.draw(st.sampled_from([n for n in KEYS if n not in self.model]))
        text = data.draw(st.sampled_from(TEXTS))
        chat = Chat.objects.get(pk=self.chat_id)
        services._operator_message_take(
            operator=self.persona.user, chat=chat, text=text, idempotency_key=self.key(name), now=clock_now()
        )
        self.model[name] = KeyModel(text, "crashed", attempts=1, node_calls=0, crashed_at=clock_now().timestamp())

    @rule()
    def the_lease_runs_out(self) -> None:
        clock_advance(delivery_lease_seconds() + 1)

    # --- invariants against the database --------------------------------------------------

    def _within_lease(self, known: KeyModel) -> bool:
        return clock_now().timestamp() - known.crashed_at < delivery_lease_seconds()

    def _message(self, name: str) -> Message:
        return Message.objects.get(chat_id=self.chat_id, idempotency_key=self.key(name), role="operator")

    @invariant()
    def one_message_per_key_in_the_state_the_model_says(self) -> None:
        operator_messages = Message.objects.filter(chat_id=self.chat_id, role="operator")
        assert operator_messages.count() == len(self.model)
        for name, known in self.model.items():
            message = self._message(name)
            assert message.text == known.text
            expected = {"delivered": "delivered", "failed": "failed", "crashed": "pending"}[known.state]
            assert message.status == expected, (name, known, message.status)
            assert message.attempts == known.attempts
            if known.state == "delivered":
                assert known.body is not None
                assert message.pk == known.body["operator_message"]["id"]
                assert Message.objects.get(reply_to=message).pk == known.body["reply"]["id"]

    @invariant()
    def only_delivered_messages_have_replies(self) -> None:
        replies = Message.objects.filter(chat_id=self.chat_id, role="agent")
        delivered = sum(1 for known in self.model.values() if known.state == "delivered")
        assert replies.count() == delivered
        assert not replies.exclude(reply_to__status="delivered").exists()

    @invariant()
    def every_node_call_is_an_attempt(self) -> None:
        assert len(self.node.calls) == sum(known.node_calls for known in self.model.values())

    def teardown(self) -> None:
        clock_reset()


def test_the_idempotency_rules_hold_for_any_sequence_of_sends_failures_and_crashes(alice, monkeypatch, settings_):
    node = Node()
    monkeypatch.setattr(services, "infer", node.infer)
    SendMachine.persona = alice
    SendMachine.node = node
    run_state_machine_as_test(
        SendMachine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
    database = "postgresql" if connection.vendor == "postgresql" else "sqlite"
    out = PROJECT / "var" / "reliability"
    out.mkdir(parents=True, exist_ok=True)
    figures = {"examples": SendMachine.examples, "sends": SendMachine.requests, "max_steps": STEPS}
    (out / f"state-machine-{database}.json").write_text(json.dumps(figures, indent=2) + "\n")


@pytest.fixture
def settings_(settings):
    """Limits out of the way: the machine is about idempotency, not quotas."""
    settings.SOFIIA_RATE_LIMIT_CHAT = type(settings.SOFIIA_RATE_LIMIT_CHAT)(limit=100_000, window=60)
    settings.SOFIIA_RATE_LIMIT_OPERATOR = type(settings.SOFIIA_RATE_LIMIT_OPERATOR)(limit=100_000, window=60)
    return settings
