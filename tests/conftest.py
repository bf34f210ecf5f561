from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.cache import caches
from rest_framework.test import APIClient

from chats.devrouter import DevRouter
from tests.live import LiveConsole
from tests.personas import Persona, Staff, make_auditor, make_persona


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
    for alias in ("default", "idempotency", "ratelimit"):
        cache = caches[alias]
        if hasattr(cache, "delete_pattern"):
            cache.delete_pattern("*")  # only this cache's prefixed keys, never the whole Redis database
        else:
            cache.clear()
    return dev_routers


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
