"""The send gate: at most N holders at once, a holder lets go while it waits, re-entrant.

No test here waits for time to pass: the gate's ``before_waiting`` hook says when a request
found no free place, so the threads meet on events instead.
"""

from __future__ import annotations

import queue
import threading

from sofiia.lib.gate import ConcurrencyGate

WAIT = 10  # seconds before a test gives up on an event that should come at once


def most_holding_at_once(gate: ConcurrencyGate, count: int, limit: int) -> int:
    inside = most = refused = 0
    changed = threading.Condition()

    def turned_away() -> None:
        nonlocal refused
        with changed:
            refused += 1
            changed.notify_all()

    def hold() -> None:
        nonlocal inside, most
        with gate.held(limit, before_waiting=turned_away), changed:
            inside += 1
            most = max(most, inside)
            # Stay in until every request that found no free place is waiting for one:
            # a gate letting more in would show it here.
            changed.wait_for(lambda: refused >= count - limit, WAIT)
            inside -= 1

    threads = [threading.Thread(target=hold) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    return most


def test_at_most_the_limit_hold_the_gate_at_once():
    assert most_holding_at_once(ConcurrencyGate("t1"), count=6, limit=2) == 2


def test_holders_waiting_on_something_slow_let_others_in():
    gate = ConcurrencyGate("t2")
    arrived = []
    lock = threading.Lock()
    all_arrived = threading.Event()

    def slow_send(index: int, release: threading.Event) -> None:
        with gate.held(1):
            with lock:
                arrived.append(index)
                if len(arrived) == 3:
                    all_arrived.set()
            with gate.released():
                release.wait(WAIT)

    release = threading.Event()
    threads = [threading.Thread(target=slow_send, args=(i, release)) for i in range(3)]
    for thread in threads:
        thread.start()
    all_arrived.wait(WAIT)
    assert sorted(arrived) == [0, 1, 2]  # all three are waiting at once with a limit of one
    release.set()
    for thread in threads:
        thread.join(WAIT)


def try_from_another_thread(gate: ConcurrencyGate, limit: int) -> tuple[str, threading.Thread]:
    """Another thread goes through ``gate``: whether it ``"entered"`` at once or ``"waits"``
    for a place, and the thread (which enters once a place is free)."""
    first: queue.Queue[str] = queue.Queue()

    def other() -> None:
        with gate.held(limit, before_waiting=lambda: first.put("waits")):
            first.put("entered")

    thread = threading.Thread(target=other, daemon=True)
    thread.start()
    return first.get(timeout=WAIT), thread


def test_a_holder_does_not_wait_for_itself_and_released_outside_the_gate_is_harmless():
    gate = ConcurrencyGate("t3")
    with gate.held(1), gate.held(1):  # re-entered without waiting for its own place
        outcome, waiter = try_from_another_thread(gate, 1)
        assert outcome == "waits"  # and it holds the one place once
    waiter.join(WAIT)  # the waiter from inside gets in and out
    assert not waiter.is_alive()
    assert try_from_another_thread(gate, 1)[0] == "entered"  # leaving the nested hold freed that place
    with gate.released():  # not holding: nothing to give up, nothing taken back
        assert try_from_another_thread(gate, 1)[0] == "entered"
    assert try_from_another_thread(gate, 1)[0] == "entered"


def test_before_waiting_runs_only_for_a_request_that_has_to_wait():
    gate = ConcurrencyGate("t4")
    calls = []
    second_waits = threading.Event()

    def second_waiting() -> None:
        calls.append("second")
        second_waits.set()

    def second_request() -> None:
        with gate.held(1, before_waiting=second_waiting):
            calls.append("second inside")

    with gate.held(1, before_waiting=lambda: calls.append("first")):
        waiter = threading.Thread(target=second_request)
        waiter.start()
        second_waits.wait(WAIT)
        assert calls == ["second"]  # the first found a free place; the second had to wait
    waiter.join(WAIT)
    assert calls == ["second", "second inside"]
