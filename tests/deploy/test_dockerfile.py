"""The Dockerfile's essentials: Python 3.11 slim, runtime requirements only, static files
collected at build, an unprivileged user, a health check on /livez, gunicorn via its
config file; and a .dockerignore that keeps development files out of the image."""

from __future__ import annotations

import fnmatch
import importlib.metadata
import json
import re
from pathlib import Path

from tests.deploy.compose import PROJECT

DOCKERFILE = PROJECT / "Dockerfile"
DOCKERIGNORE = PROJECT / ".dockerignore"


def instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            result.append((keyword.upper(), arguments.strip()))
    return result


def arguments(keyword: str) -> list[str]:
    return [args for kw, args in instructions() if kw == keyword]


def ignored_patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def is_ignored(path: str) -> bool:
    return any(
        fnmatch.fnmatch(path, pattern.removeprefix("**/")) or path.startswith(pattern.rstrip("/") + "/")
        for pattern in ignored_patterns()
    )


def test_the_image_is_python_3_11_slim():
    (base,) = arguments("FROM")
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", base)


def test_it_runs_as_an_unprivileged_user():
    keywords = [keyword for keyword, _ in instructions()]
    user = arguments("USER")[-1]
    assert user not in ("root", "0")
    assert not user.startswith(("root:", "0:"))
    assert keywords.index("USER") > max(i for i, keyword in enumerate(keywords) if keyword == "RUN")
    assert any(f"useradd --system --uid 10001 --gid {user}" in run for run in arguments("RUN"))


def test_only_the_runtime_requirements_are_installed():
    assert "requirements-dev" not in DOCKERFILE.read_text()
    assert any("pip install" in run and "-r requirements.txt" in run for run in arguments("RUN"))
    for path in ("requirements-dev.txt", "tests/conftest.py", ".venv/bin/python", ".git/HEAD", "var/sofiia.sqlite3"):
        assert is_ignored(path), path
    for path in ("secrets/django_secret_key", ".env"):
        assert is_ignored(path), f"{path} must never reach the image"


def test_static_files_are_collected_at_build():
    assert any("manage.py collectstatic --noinput" in run for run in arguments("RUN"))


def test_the_image_runs_in_production_mode_unless_told_otherwise():
    # Debug off by default, so the settings refuse to start without a secret key; only the
    # build's collectstatic runs in debug mode, which needs no secret.
    assert "DJANGO_DEBUG=0" in " ".join(arguments("ENV")).split()
    for run in arguments("RUN"):
        assert "DJANGO_DEBUG=1" not in run or run.startswith("DJANGO_DEBUG=1 python manage.py collectstatic"), run


def test_the_runtime_requirements_include_what_the_gevent_worker_imports():
    # gunicorn's gevent worker imports packages it lists only under its "gevent" extra.
    pinned = {
        re.split(r"[\[=<>~ ]", line, maxsplit=1)[0].lower()
        for line in (PROJECT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    extra = [
        re.split(r"[\[=<>~; ]", requirement, maxsplit=1)[0].lower()
        for requirement in importlib.metadata.requires("gunicorn") or []
        if 'extra == "gevent"' in requirement
    ]
    assert extra
    assert set(extra) <= pinned


def test_everything_the_image_runs_is_copied_into_it():
    for path in ("requirements.txt", "manage.py", "gunicorn.conf.py", "ops/healthcheck.py", "sofiia/wsgi.py"):
        assert (PROJECT / path).exists(), path
        assert not is_ignored(path), path
    assert "COPY . ." in [f"COPY {args}" for args in arguments("COPY")]


def test_gunicorn_starts_with_its_config_on_the_port_the_health_check_probes():
    command = json.loads(arguments("CMD")[-1])
    assert command == ["gunicorn", "-c", "gunicorn.conf.py", "sofiia.wsgi:application"]
    assert "GUNICORN_BIND=0.0.0.0:8000" in " ".join(arguments("ENV"))
    assert arguments("EXPOSE") == ["8000"]
    (healthcheck,) = arguments("HEALTHCHECK")
    options, _, probe = healthcheck.partition("CMD ")
    assert {"--interval", "--timeout", "--start-period", "--retries"} <= set(re.findall(r"--[a-z-]+", options))
    # Without a URL the probe asks /livez where GUNICORN_BIND says gunicorn listens.
    assert json.loads(probe) == ["python", "ops/healthcheck.py"]


def test_the_image_does_not_bake_in_a_secret():
    text = DOCKERFILE.read_text()
    assert "DJANGO_SECRET_KEY" not in text
    assert "SOFIIA_AUDIT_KEYS" not in text
    assert not Path(PROJECT / "secrets").is_dir() or is_ignored("secrets/anything")
