"""The send gate: at most N holders at once, a holder lets go while it waits, re-entrant."""

from __future__ import annotations

import threading
import time

from sofiia.lib.gate import ConcurrencyGate


def most_holding_at_once(gate: ConcurrencyGate, count: int, limit: int) -> int:
    inside = most = 0
    lock = threading.Lock()

    def hold() -> None:
        nonlocal inside, most
        with gate.held(limit):
            with lock:
                inside += 1
                most = max(most, inside)
            time.sleep(0.05)
            with lock:
                inside -= 1

    threads = [threading.Thread(target=hold) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return most


def test_at_most_the_limit_hold_the_gate_at_once():
    assert most_holding_at_once(ConcurrencyGate("t1"), count=6, limit=2) == 2


def test_holders_waiting_on_something_slow_let_others_in():
    gate = ConcurrencyGate("t2")
    arrived = []

    def slow_send(index: int, release: threading.Event) -> None:
        with gate.held(1):
            arrived.append(index)
            with gate.released():
                release.wait(5)

    release = threading.Event()
    threads = [threading.Thread(target=slow_send, args=(i, release)) for i in range(3)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while len(arrived) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(arrived) == [0, 1, 2]  # all three are waiting at once with a limit of one
    release.set()
    for thread in threads:
        thread.join(5)


def enters_from_another_thread(gate: ConcurrencyGate, limit: int, wait: float) -> bool:
    """Whether another thread gets through ``gate`` within ``wait`` seconds (it keeps trying)."""
    entered = threading.Event()

    def other() -> None:
        with gate.held(limit):
            entered.set()

    threading.Thread(target=other, daemon=True).start()
    return entered.wait(wait)


def test_a_holder_does_not_wait_for_itself_and_released_outside_the_gate_is_harmless():
    gate = ConcurrencyGate("t3")
    with gate.held(1), gate.held(1):  # re-entered without waiting for its own place
        assert not enters_from_another_thread(gate, 1, wait=0.2)  # and it holds the one place once
    time.sleep(0.05)  # the waiter from inside gets in and out
    assert enters_from_another_thread(gate, 1, wait=2)  # leaving the nested hold freed that place
    with gate.released():  # not holding: nothing to give up, nothing taken back
        assert enters_from_another_thread(gate, 1, wait=2)
    assert enters_from_another_thread(gate, 1, wait=2)


def test_before_waiting_runs_only_for_a_request_that_has_to_wait():
    gate = ConcurrencyGate("t4")
    calls = []

    def second_request() -> None:
        with gate.held(1, before_waiting=lambda: calls.append("second")):
            calls.append("second inside")

    with gate.held(1, before_waiting=lambda: calls.append("first")):
        waiter = threading.Thread(target=second_request)
        waiter.start()
        deadline = time.monotonic() + 5
        while not calls and time.monotonic() < deadline:
            time.sleep(0.01)
        assert calls == ["second"]  # the first found a free place; the second had to wait
    waiter.join(5)
    assert calls == ["second", "second inside"]
