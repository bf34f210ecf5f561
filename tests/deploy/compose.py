"""Read docker-compose.yml as Compose would: through ``docker compose config`` when a docker
client with the compose plugin is present, else by parsing it and interpolating ``${...}``
with the same rules. Also: the environment variables the application reads."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

PROJECT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = PROJECT / "docker-compose.yml"
ENV_EXAMPLE = PROJECT / "ops/compose.env.example"
CADDYFILE = PROJECT / "ops/Caddyfile"
APP_SOURCES = ("sofiia", "chats", "audit", "ratelimit", "gunicorn.conf.py", "manage.py")

_INTERPOLATION = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|(?P<bare>\w+))")
_ENV_READER = re.compile(r'\benv_(\w+)\(\s*"([A-Z][A-Z0-9_]*)"')
_OS_ENVIRON = re.compile(
    r'os\.environ(?:\.get|\.setdefault)?\(\s*"([A-Z][A-Z0-9_]*)"|os\.environ\[\s*"([A-Z][A-Z0-9_]*)"'
)


class MissingVariable(Exception):
    pass


def compose_plugin() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    result = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
    return result.returncode == 0


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip()
    return env


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?error}``, ``$$``."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        current = env.get(name)
        missing = current is None or (op is not None and op.startswith(":") and current == "")
        if op in (":-", "-"):
            return arg if missing else str(current)
        if op in (":?", "?") and missing:
            raise MissingVariable(f"required variable {name} is missing a value: {arg}")
        return current or ""

    return _INTERPOLATION.sub(substitute, value)


def variables_read() -> set[str]:
    """Every ``${VAR}`` the compose file reads from its environment."""
    return {
        match.group("name") or match.group("bare")
        for match in _INTERPOLATION.finditer(COMPOSE_FILE.read_text())
        if not match.group("escaped")
    }


def load(env: Mapping[str, str]) -> dict[str, Any]:
    """The compose model with ``env`` as the project's environment (``.env``)."""
    if not compose_plugin():
        return interpolate(yaml.safe_load(COMPOSE_FILE.read_text()), env)  # type: ignore[no-any-return]
    with tempfile.NamedTemporaryFile("w", suffix=".env") as env_file:
        env_file.write("".join(f"{name}={value}\n" for name, value in env.items()))
        env_file.flush()
        result = subprocess.run(
            ["docker", "compose", "-f", str(COMPOSE_FILE), "--env-file", env_file.name, "config", "--format", "json"],
            capture_output=True,
            text=True,
            check=False,
            env={
                key: value for key, value in os.environ.items() if key in ("PATH", "HOME") or key.startswith("DOCKER_")
            },
        )
    if result.returncode != 0:
        raise MissingVariable(result.stderr.strip())
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def names(value: Any) -> list[str]:
    """Names from a short list (``[a, b]``), a long list (``[{source: a}]``) or a mapping."""
    if isinstance(value, dict):
        return list(value)
    return [item["source"] if isinstance(item, dict) else item for item in value or []]


def mounts(volumes: list[Any]) -> list[tuple[str, str, bool]]:
    """``(source, target, read_only)`` of short (``src:dst:ro``) and long volume entries."""
    result = []
    for volume in volumes:
        if isinstance(volume, dict):
            result.append((volume["source"], volume["target"], bool(volume.get("read_only"))))
        else:
            source, target, *mode = volume.split(":")
            result.append((source, target, mode == ["ro"]))
    return result


def app_variables() -> set[str]:
    """The environment variables the application reads, found in its source."""
    found: set[str] = set()
    for source in APP_SOURCES:
        path = PROJECT / source
        for file in path.rglob("*.py") if path.is_dir() else [path]:
            text = file.read_text()
            for reader, name in _ENV_READER.findall(text):
                found.add(name)
                if reader == "secret":
                    found.add(f"{name}_FILE")
            for first, second in _OS_ENVIRON.findall(text):
                found.add(first or second)
    return found


def caddyfile_variables() -> set[str]:
    return set(re.findall(r"\{\$(\w+)", CADDYFILE.read_text()))
