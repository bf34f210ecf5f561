from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from rest_framework.test import APIClient

from chats.devrouter import DevRouter
from sofiia.settings import IDEMPOTENCY_CACHE_PREFIX, RATE_LIMIT_CACHE_PREFIX, backend_cache
from tests.caches import clear_caches
from tests.live import LiveConsole
from tests.multi import MultiInstance, run_multi_instance
from tests.personas import Persona, Staff, make_auditor, make_persona
from tests.redis_server import DisposableRedis


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked ``postgres`` run only when the suite runs on PostgreSQL."""
    if item.get_closest_marker("postgres") is None:
        return
    from django.conf import settings

    if not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        pytest.skip("needs PostgreSQL (set DATABASE_URL=postgres://...)")


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None, tmp_path_factory: Any) -> None:
    """Put the SQLite test database in a file, so live gunicorn workers can open it too."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        database.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("sqlite") / "test.sqlite3")


@pytest.fixture(scope="session")
def dev_routers() -> Iterator[dict[str, DevRouter]]:
    routers = {"NODA1": DevRouter("NODA1").start(), "NODA2": DevRouter("NODA2").start()}
    yield routers
    for router in routers.values():
        router.stop()


@pytest.fixture(autouse=True)
def nodes(settings: Any, dev_routers: dict[str, DevRouter]) -> dict[str, DevRouter]:
    """Every test talks to two real dev routers over HTTP, with nothing left from the last test."""
    settings.SOFIIA_NODES = {name: router.url for name, router in dev_routers.items()}
    settings.SOFIIA_DEFAULT_NODE = "NODA1"
    for router in dev_routers.values():
        router.calls.clear()
    clear_caches()
    return dev_routers


@pytest.fixture(params=["inmemory", "redis"])
def send_backend(request: Any, settings: Any) -> str:
    """Run the test with the idempotency and rate-limit caches on each backend."""
    kind: str = request.param
    settings.SOFIIA_IDEMPOTENCY_BACKEND = kind
    settings.SOFIIA_RATE_LIMIT_BACKEND = kind
    settings.CACHES = {
        **settings.CACHES,
        "idempotency": backend_cache(kind, IDEMPOTENCY_CACHE_PREFIX),
        "ratelimit": backend_cache(kind, RATE_LIMIT_CACHE_PREFIX),
    }
    clear_caches()
    return kind


@pytest.fixture
def alice(db: None) -> Persona:
    return make_persona("alice")


@pytest.fixture
def bob(db: None) -> Persona:
    return make_persona("bob")


@pytest.fixture
def auditor(db: None) -> Staff:
    """Staff in the ``auditors`` group (view-only audit access), logged in to the admin."""
    return make_auditor("audrey")


@pytest.fixture
def anonymous(db: None) -> APIClient:
    return APIClient()


@pytest.fixture
def disposable_redis() -> Iterator[DisposableRedis]:
    """A Redis server of the test's own, which it may stop."""
    server = DisposableRedis()
    yield server
    server.stop()


@pytest.fixture
def live_console(transactional_db: None) -> Iterator[Callable[..., LiveConsole]]:
    """Start consoles under gunicorn on the test database: ``live_console(workers=2, **env)``."""
    started: list[LiveConsole] = []

    def start(*, workers: int = 2, **env: str) -> LiveConsole:
        console = LiveConsole(env_overrides=env, workers=workers).start()
        started.append(console)
        return console

    yield start
    for console in started:
        console.stop()


@pytest.fixture
def multi_instance(transactional_db: None) -> Iterator[Callable[..., MultiInstance]]:
    """Start instance pairs A/B with ops/multi_instance.sh on the test database (PostgreSQL only):
    ``multi_instance(workers=1, **env)``; see tests/multi.py."""
    with ExitStack() as stack:
        yield lambda *, workers=1, **env: stack.enter_context(run_multi_instance(workers=workers, **env))
