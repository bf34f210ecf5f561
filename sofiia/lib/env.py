"""Typed readers for the environment.

Every reader raises ``ImproperlyConfigured`` with a message that starts with the
variable's name, so a bad deployment stops at start-up with one clear line instead
of failing later inside a request.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_NODE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    env = os.environ if environ is None else environ
    value = env.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def env_str(name: str, default: str, *, environ: Mapping[str, str] | None = None) -> str:
    value = _raw(name, environ)
    return default if value is None else value


def env_secret(name: str, *, environ: Mapping[str, str] | None = None) -> str | None:
    """Read a secret from ``NAME`` or from the file named by ``NAME_FILE``."""
    value = _raw(name, environ)
    path = _raw(f"{name}_FILE", environ)
    if value is not None and path is not None:
        raise ImproperlyConfigured(f"{name}: set either {name} or {name}_FILE, not both")
    if path is not None:
        try:
            return Path(path).read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {path!r} ({exc.strerror})") from exc
    return value


def env_bool(name: str, default: bool, *, environ: Mapping[str, str] | None = None) -> bool:
    value = _raw(name, environ)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}: expected a boolean (1/0, true/false), got {value!r}")


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    value = _raw(name, environ)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}: expected an integer, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}: must be at least {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name}: must be at most {maximum}, got {number}")
    return number


def env_float(name: str, default: float, *, minimum: float = 0.0, environ: Mapping[str, str] | None = None) -> float:
    value = _raw(name, environ)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}: expected a number, got {value!r}") from None
    if not number > minimum:
        raise ImproperlyConfigured(f"{name}: must be greater than {minimum:g}, got {value!r}")
    return number


def env_list(name: str, default: list[str], *, environ: Mapping[str, str] | None = None) -> list[str]:
    value = _raw(name, environ)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: tuple[str, ...], *, environ: Mapping[str, str] | None = None) -> str:
    value = env_str(name, default, environ=environ).lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
    return value


@dataclass(frozen=True)
class RatePolicy:
    """``limit`` requests per ``window`` seconds."""

    limit: int
    window: int

    def __str__(self) -> str:
        return f"{self.limit}/{self.window}"


def parse_rate(name: str, value: str) -> RatePolicy:
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", value)
    if not match:
        raise ImproperlyConfigured(f"{name}: expected N/SECONDS (e.g. 30/60), got {value!r}")
    limit, window = int(match.group(1)), int(match.group(2))
    if limit < 1 or window < 1:
        raise ImproperlyConfigured(f"{name}: both N and SECONDS must be at least 1, got {value!r}")
    return RatePolicy(limit=limit, window=window)


def env_rate(name: str, default: str, *, environ: Mapping[str, str] | None = None) -> RatePolicy:
    return parse_rate(name, env_str(name, default, environ=environ))


def _valid_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def parse_nodes(name: str, value: str) -> dict[str, str]:
    """Parse ``NAME=URL[,NAME=URL...]`` into an ordered ``{name: url}`` map."""
    nodes: dict[str, str] = {}
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        node, sep, url = item.partition("=")
        node, url = node.strip(), url.strip().rstrip("/")
        if not sep or not _NODE_NAME.match(node):
            raise ImproperlyConfigured(f"{name}: expected NAME=URL[,NAME=URL...], got {item!r}")
        if not _valid_http_url(url):
            raise ImproperlyConfigured(f"{name}: node {node} needs an http(s) URL, got {url!r}")
        if node in nodes:
            raise ImproperlyConfigured(f"{name}: node {node} is listed twice")
        nodes[node] = url
    if not nodes:
        raise ImproperlyConfigured(f"{name}: at least one node is required")
    return nodes


_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


def parse_keyed_secrets(name: str, value: str, *, min_length: int = 32) -> list[tuple[str, str]]:
    """``ID:SECRET[,ID:SECRET...]`` (ids of ``[A-Za-z0-9_.-]``, secrets ``min_length`` or longer),
    in order: the first is the current one, the others older ones kept for verification."""
    keys: list[tuple[str, str]] = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        key_id, sep, secret = item.partition(":")
        if not sep or not _KEY_ID.match(key_id):
            raise ImproperlyConfigured(f"{name}: expected ID:SECRET[,ID:SECRET...] with ids of 1-32 [A-Za-z0-9_.-]")
        if len(secret) < min_length:
            raise ImproperlyConfigured(f"{name}: the secret of key {key_id!r} is shorter than {min_length} characters")
        if any(existing == key_id for existing, _ in keys):
            raise ImproperlyConfigured(f"{name}: key {key_id!r} is listed twice")
        keys.append((key_id, secret))
    return keys
