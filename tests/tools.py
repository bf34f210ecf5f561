"""External checking tools (promtool, caddy) for the ops and deployment tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent


def tool(name: str) -> str:
    """The path of ``name`` on PATH or fetched by ``make tools``; skip the test without it."""
    found = shutil.which(name) or shutil.which(name, path=str(PROJECT / "var/tools/bin"))
    if found is None:
        pytest.skip(f"{name} is not installed: `make tools` fetches it (make test does)")
    return found
