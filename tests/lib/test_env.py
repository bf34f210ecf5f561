from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from sofiia.lib.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_rate,
    env_secret,
    parse_nodes,
)
from tests.live import PROJECT


def test_nodes_parse_in_order():
    assert parse_nodes("N", "NODA1=http://127.0.0.1:9102, NODA2=https://node2.example:443/") == {
        "NODA1": "http://127.0.0.1:9102",
        "NODA2": "https://node2.example:443",
    }


@pytest.mark.parametrize(
    "value",
    ["", "NODA1", "NODA1=", "=http://x", "NODA1=ftp://x", "NODA1=http://", "bad name=http://x",
     "NODA1=http://a,NODA1=http://b", "NODA1=http://host:99999"],
)  # fmt: skip
def test_malformed_nodes_name_the_variable(value):
    with pytest.raises(ImproperlyConfigured, match=r"^SOFIIA_NODES: "):
        parse_nodes("SOFIIA_NODES", value)


@pytest.mark.parametrize(("value", "limit", "window"), [("30/60", 30, 60), (" 1 / 1 ", 1, 1)])
def test_rates_parse(value, limit, window):
    rate = env_rate("R", "1/1", environ={"R": value})
    assert (rate.limit, rate.window) == (limit, window)


@pytest.mark.parametrize("value", ["abc/def", "30", "0/60", "30/0", "-1/60", "30/60/1", "1.5/60"])
def test_malformed_rates_name_the_variable(value):
    with pytest.raises(ImproperlyConfigured, match=r"^SOFIIA_RATE_LIMIT_CHAT: "):
        env_rate("SOFIIA_RATE_LIMIT_CHAT", "30/60", environ={"SOFIIA_RATE_LIMIT_CHAT": value})


def test_scalars_fall_back_to_their_defaults_when_unset_or_blank():
    environ = {"BLANK": "  "}
    assert env_bool("BLANK", True, environ=environ) is True
    assert env_int("MISSING", 7, environ=environ) == 7
    assert env_float("MISSING", 2.5, environ=environ) == 2.5
    assert env_list("MISSING", ["a"], environ=environ) == ["a"]
    assert env_choice("MISSING", "inmemory", ("inmemory", "redis"), environ=environ) == "inmemory"


@pytest.mark.parametrize(
    ("reader", "value"),
    [
        (lambda e: env_bool("V", False, environ=e), "maybe"),
        (lambda e: env_int("V", 1, environ=e), "ten"),
        (lambda e: env_int("V", 1, minimum=1, environ=e), "0"),
        (lambda e: env_float("V", 1.0, environ=e), "0"),
        (lambda e: env_float("V", 1.0, environ=e), "soon"),
        (lambda e: env_choice("V", "a", ("a", "b"), environ=e), "c"),
    ],
)
def test_bad_scalars_name_the_variable(reader, value):
    with pytest.raises(ImproperlyConfigured, match=r"^V: "):
        reader({"V": value})


def test_lists_drop_blanks():
    assert env_list("K", [], environ={"K": "a, ,b,"}) == ["a", "b"]


def test_a_secret_is_read_from_a_file(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    assert env_secret("KEY", environ={"KEY_FILE": str(secret)}) == "s3cret"
    with pytest.raises(ImproperlyConfigured, match=r"^KEY_FILE: cannot read"):
        env_secret("KEY", environ={"KEY_FILE": str(tmp_path / "missing")})
    with pytest.raises(ImproperlyConfigured, match=r"^KEY: set either"):
        env_secret("KEY", environ={"KEY": "a", "KEY_FILE": str(secret)})


def _clean_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOFIIA_", "DJANGO_", "DATABASE_URL"))}
    env.update(overrides)
    return env


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SOFIIA_NODES", "garbage"),
        ("SOFIIA_RATE_LIMIT_CHAT", "abc/def"),
        ("SOFIIA_RATE_LIMIT_OPERATOR", "10"),
        ("SOFIIA_IDEMPOTENCY_BACKEND", "memcached"),
        ("SOFIIA_RATE_LIMIT_BACKEND", "disk"),
        ("SOFIIA_IDEMPOTENCY_TTL", "-5"),
        ("SOFIIA_INFER_TIMEOUT", "soon"),
        ("SOFIIA_DEFAULT_NODE", "NODA9"),
        ("SOFIIA_AUDIT_RETENTION_DAYS", "0"),
        ("SOFIIA_REDIS_URL", "http://127.0.0.1:6379"),
        ("SOFIIA_TRUSTED_PROXIES", "10.0.0.0/33"),
        ("DATABASE_URL", "mysql://root@127.0.0.1/x"),
        ("DJANGO_DEBUG", "perhaps"),
        ("DJANGO_SECURE_SSL_REDIRECT", "sometimes"),
        ("SOFIIA_AUDIT_CHAIN_KEY", "no-colon-" + "x" * 40),
        ("SOFIIA_AUDIT_CHAIN_KEY", "k1:too-short"),
        ("SOFIIA_AUDIT_CHAIN_KEY", "k1:" + "x" * 40 + ",k1:" + "y" * 40),
        ("SOFIIA_RATE_LIMIT_CHAT_CREATE", "many"),
        ("SOFIIA_LOGIN_LIMIT_USERNAME", "5"),
        ("SOFIIA_TOKEN_TTL_DAYS", "0"),
    ],
)
def test_a_bad_variable_stops_manage_py_with_one_line_naming_it(variable, value):
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=PROJECT, env=_clean_env(**{variable: value}), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"configuration error: {variable}"), lines[0]


def test_production_settings_pass_djangos_deployment_checks_with_warnings_as_failures():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=PROJECT,
        env=_clean_env(
            DJANGO_DEBUG="0",
            DJANGO_SECRET_KEY="a-long-random-production-secret-" + "q7Zx" * 10,
            DJANGO_ALLOWED_HOSTS="console.example.org",
            SOFIIA_AUDIT_CHAIN_KEY="k2026:" + "c" * 48,
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_debug_off_without_a_secret_key_refuses_to_start():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=PROJECT, env=_clean_env(DJANGO_DEBUG="0"), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == "configuration error: DJANGO_SECRET_KEY: required when DJANGO_DEBUG is off"


def test_a_bad_variable_stops_gunicorn_with_one_line_naming_it(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "sofiia.wsgi:application", "--bind",
         "127.0.0.1:0"],
        cwd=PROJECT, env=_clean_env(SOFIIA_NODES="NODA1"), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "configuration error: SOFIIA_NODES: expected NAME=URL[,NAME=URL...], got 'NODA1'"
    ]
