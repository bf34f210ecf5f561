from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from rest_framework.test import APIClient

from nodes.devrouter import DevRouter
from nodes.registry import node_statuses_forget
from sofiia.lib.clock import clock_advance, clock_reset
from sofiia.settings import IDEMPOTENCY_CACHE_PREFIX, RATE_LIMIT_CACHE_PREFIX, backend_cache
from tests.caches import clear_caches
from tests.live import TEST_AUDIT_CHAIN_KEY, LiveConsole
from tests.multi import MultiInstance, run_multi_instance
from tests.personas import Persona, Staff, make_auditor, make_persona
from tests.redis_server import DisposableRedis


def pytest_configure(config: pytest.Config) -> None:
    """Personas are made by the hundred: a million PBKDF2 rounds each would dominate the run.
    Tests of hashing itself set the production hashers back with the ``settings`` fixture."""
    from django.conf import settings

    settings.PASSWORD_HASHERS = ["tests.hashers.OneRoundPBKDF2PasswordHasher"]
    # The chain key every console a test starts uses too (tests/live.py).
    key_id, _, secret = TEST_AUDIT_CHAIN_KEY.partition(":")
    settings.SOFIIA_AUDIT_CHAIN_KEYS = [(key_id, secret)]


# Fixtures and parameters that put a test on Redis, whatever the configured backends.
_REDIS_FIXTURES = {"disposable_redis", "multi_instance"}
_REDIS_PARAMETERS = {"send_backend", "backend"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test that talks to Redis carries the ``redis`` marker (``-m "not redis"`` runs
    the rest on a machine without Redis)."""
    from django.conf import settings

    on_redis = "redis" in (settings.SOFIIA_IDEMPOTENCY_BACKEND, settings.SOFIIA_RATE_LIMIT_BACKEND)
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        fixtures = set(getattr(item, "fixturenames", ()))
        if on_redis or _REDIS_FIXTURES & fixtures or any(params.get(name) == "redis" for name in _REDIS_PARAMETERS):
            item.add_marker(pytest.mark.redis)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``postgres`` tests run only when the suite runs on PostgreSQL. ``redis`` tests need the
    Redis server: without it they are skipped, or fail when SOFIIA_TESTS_REQUIRE_REDIS=1
    (CI), so a missing server can never pass silently there."""
    from django.conf import settings

    if item.get_closest_marker("postgres") is not None and not settings.DATABASES["default"]["ENGINE"].endswith(
        "postgresql"
    ):
        pytest.skip("needs PostgreSQL (set DATABASE_URL=postgres://...)")
    if item.get_closest_marker("redis") is not None and not redis_answers(settings.SOFIIA_REDIS_URL):
        message = f"needs the Redis server at {settings.SOFIIA_REDIS_URL}"
        if os.environ.get("SOFIIA_TESTS_REQUIRE_REDIS") == "1":
            pytest.fail(message)
        pytest.skip(message)


@functools.cache
def redis_answers(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


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
    # First: a refresh an earlier test set off must not reach the routers once they are cleared.
    node_statuses_forget()
    for router in dev_routers.values():
        router.calls.clear()
        router.probe_request_ids.clear()
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
def clock() -> Iterator[Callable[[float], None]]:
    """Moves the application's clock (windows, leases, claims) forward instead of sleeping."""
    yield clock_advance
    clock_reset()


@pytest.fixture
def behind_proxy(settings: Any) -> None:
    """The test client's requests come through a trusted proxy (its peer, 127.0.0.1): their
    ``X-Request-ID`` is kept as the request's id (sofiia.lib.request_id)."""
    settings.SOFIIA_TRUSTED_PROXIES = ["127.0.0.1"]


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
