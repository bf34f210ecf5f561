from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from nodes.transport import http_session
from tests.nodes.fakes import Answer, FakeNode, Request


@pytest.fixture
def fake_node(settings: Any) -> Iterator[Callable[..., FakeNode]]:
    """``fake_node(answer, name="EVIL", drip_seconds=0)``: a hostile node, configured under
    ``name`` next to the dev routers."""
    # A new server may get the port of an earlier one; no pooled connection may carry over.
    http_session().close()
    started: list[FakeNode] = []

    def start(answer: Callable[[Request], Answer], *, name: str = "EVIL", drip_seconds: float = 0.0) -> FakeNode:
        node = FakeNode(answer, drip_seconds=drip_seconds)
        started.append(node)
        settings.SOFIIA_NODES = {**settings.SOFIIA_NODES, name: node.url}
        return node

    yield start
    for node in started:
        node.close()
