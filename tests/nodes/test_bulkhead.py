"""The per-node limit of sends in flight: exact within a process and across processes, and
never leaking the slots of a process that dies."""

from __future__ import annotations

import multiprocessing
import os
import signal
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from nodes.bulkhead import NodeBulkhead
from nodes.infer import NodeBusy

fork = multiprocessing.get_context("fork")


@pytest.fixture
def limit(settings: Any) -> int:
    settings.SOFIIA_NODE_MAX_INFLIGHT = 3
    return 3


def test_a_node_gives_out_at_most_its_limit_of_slots(tmp_path, limit):
    bulkhead = NodeBulkhead(tmp_path)
    with ExitStack() as held:
        for _ in range(limit):
            held.enter_context(bulkhead.slot("NODA1"))
        assert bulkhead.in_flight("NODA1") == limit
        with pytest.raises(NodeBusy) as busy, bulkhead.slot("NODA1"):
            pass
        assert (busy.value.code, busy.value.node) == ("node_busy", "NODA1")
        # Another node is not affected by a full one.
        with bulkhead.slot("NODA2"):
            assert bulkhead.in_flight("NODA2") == 1
    assert bulkhead.in_flight("NODA1") == 0
    with bulkhead.slot("NODA1"):
        assert bulkhead.in_flight("NODA1") == 1


def test_a_slot_is_given_back_when_the_send_fails(tmp_path, limit):
    bulkhead = NodeBulkhead(tmp_path)
    for _ in range(limit + 2):
        with pytest.raises(RuntimeError), bulkhead.slot("NODA1"):
            raise RuntimeError("the node call failed")
    assert bulkhead.in_flight("NODA1") == 0


def _hold(directory: Path, node: str, wanted: int, start: Any, got: Any, release: Any) -> None:
    bulkhead = NodeBulkhead(directory)
    start.wait()
    with ExitStack() as held:
        count = 0
        for _ in range(wanted):
            try:
                held.enter_context(bulkhead.slot(node))
                count += 1
            except NodeBusy:
                pass
        got.put(count)
        release.wait()


def _spawn_holders(directory: Path, count: int, wanted: int) -> tuple[list[Any], Any, Any]:
    start, release, got = fork.Event(), fork.Event(), fork.Queue()
    holders = [fork.Process(target=_hold, args=(directory, "NODA1", wanted, start, got, release)) for _ in range(count)]
    for holder in holders:
        holder.start()
    start.set()
    return holders, got, release


def test_processes_racing_for_slots_get_exactly_the_limit_together(tmp_path, settings):
    settings.SOFIIA_NODE_MAX_INFLIGHT = 12
    holders, got, release = _spawn_holders(tmp_path, count=4, wanted=5)
    try:
        counts = [got.get(timeout=30) for _ in holders]
        assert sum(counts) == 12
        assert NodeBulkhead(tmp_path).in_flight("NODA1") == 12
    finally:
        release.set()
        for holder in holders:
            holder.join(timeout=30)
    assert NodeBulkhead(tmp_path).in_flight("NODA1") == 0


def test_the_slots_of_a_killed_worker_come_back(tmp_path, limit):
    holders, got, _release = _spawn_holders(tmp_path, count=1, wanted=limit)
    assert got.get(timeout=30) == limit
    bulkhead = NodeBulkhead(tmp_path)
    with pytest.raises(NodeBusy), bulkhead.slot("NODA1"):
        pass
    os.kill(holders[0].pid, signal.SIGKILL)
    holders[0].join(timeout=30)
    assert bulkhead.in_flight("NODA1") == 0
    with ExitStack() as held:
        for _ in range(limit):
            held.enter_context(bulkhead.slot("NODA1"))
