"""The send-path guarantees across the two instances of ops/multi_instance.sh (one PostgreSQL,
one Redis): the A/B idempotency smoke passes, and rate limits are exact across instances."""

from __future__ import annotations

import pytest

from chats.models import Message
from tests.multi import requires_postgres
from tests.ops.test_redis_idempotency_smoke import run_smoke, verdicts
from tests.ratelimit.test_live_exactness import LIMIT, assert_exactly, burst, new_chat

pytestmark = [pytest.mark.live, pytest.mark.postgres, requires_postgres]


def test_the_redis_idempotency_smoke_passes_across_the_pair(multi_instance, alice, nodes):
    pair = multi_instance()
    result = run_smoke(pair.a, pair.b, token=alice.token)
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(verdicts(result.stdout).values()) == {"PASS"}
    assert Message.objects.filter(role="operator").count() == 1
    assert len(nodes["NODA1"].calls) == 1


def test_the_chat_limit_is_exact_across_the_pair(multi_instance, alice):
    pair = multi_instance(SOFIIA_RATE_LIMIT_CHAT=f"{LIMIT}/60", SOFIIA_RATE_LIMIT_OPERATOR="1000/60")
    chat_id = new_chat(pair.a, alice.token)
    responses = burst([(pair.a, chat_id), (pair.b, chat_id)], token=alice.token, count=3 * LIMIT)
    assert_exactly(responses, admitted=LIMIT, scope="chat")
