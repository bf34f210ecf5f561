from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.faults.harness import ControlledRedis, DisposablePostgres
from tests.live import LiveConsole


@pytest.fixture(scope="module")
def postgres() -> Iterator[DisposablePostgres]:
    server = DisposablePostgres()
    yield server
    server.destroy()


@pytest.fixture
def controlled_redis() -> Iterator[Callable[..., ControlledRedis]]:
    started: list[ControlledRedis] = []

    def start(*extra: str) -> ControlledRedis:
        server = ControlledRedis(*extra)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def console() -> Iterator[Callable[..., LiveConsole]]:
    """Start consoles under gunicorn on the database the environment names (not the test
    database): ``console(workers=2, DATABASE_URL=..., ...)``."""
    started: list[LiveConsole] = []

    def start(*, workers: int = 2, **env: str) -> LiveConsole:
        live = LiveConsole(env_overrides=env, workers=workers).start()
        started.append(live)
        return live

    yield start
    for live in started:
        live.stop()
