"""docker-compose.yml: the services, their start order and health checks, and a console
configuration that the application itself accepts. Read through ``docker compose config``
when the compose plugin is installed, else parsed and interpolated the same way."""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import sys
from typing import Any

import pytest
import yaml

from tests.deploy.compose import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    PROJECT,
    MissingVariable,
    app_variables,
    caddyfile_variables,
    load,
    mounts,
    names,
    read_env_file,
    variables_read,
)

CONSOLES = ("console-a", "console-b")
ONE_SHOT = ("migrate",)
SERVICES = {"postgres", "redis", "migrate", *CONSOLES, "clearsessions", "caddy"}
# Read by Compose itself from .env, not by the file.
COMPOSE_OWN_VARIABLES = {"COMPOSE_PROJECT_NAME"}


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def services(env: dict[str, str]) -> dict[str, Any]:
    return load(env)["services"]  # type: ignore[no-any-return]


def test_the_stack_is_postgres_redis_a_migration_two_consoles_and_caddy(services):
    assert set(services) == SERVICES


def test_images_from_elsewhere_are_pinned_to_a_version_and_ours_are_built_here(services):
    for name, service in services.items():
        if "build" in service:
            build = service["build"]
            context = build if isinstance(build, str) else build["context"]
            assert (PROJECT / context).resolve() == PROJECT, name
            assert service["image"].startswith("sofiia-console:"), name
            continue
        repository, _, tag = service["image"].partition(":")
        assert repository, name
        assert re.match(r"^\d+(\.\d+)+(-[a-z0-9.]+)?$", tag), f"{name}: {service['image']} is not pinned to a version"


def test_every_long_running_service_has_a_health_check(services):
    for name, service in services.items():
        if name in ONE_SHOT:
            continue
        check = service["healthcheck"]
        assert not check.get("disable"), name
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert len(check["test"]) > 1, name
        for field in ("interval", "timeout", "retries"):
            assert check[field], (name, field)
        assert service["restart"] == "unless-stopped", name


def test_the_migration_runs_once_before_the_consoles_and_is_not_health_checked(services):
    migrate = services["migrate"]
    assert migrate["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert migrate["restart"] == "no"
    assert migrate["healthcheck"]["disable"] is True
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate["image"] == services["console-a"]["image"]


def test_services_start_only_once_what_they_need_is_healthy_or_done(services):
    console = {"postgres": "service_healthy", "redis": "service_healthy", "migrate": "service_completed_successfully"}
    expected = {
        "migrate": {"postgres": "service_healthy"},
        "console-a": console,
        "console-b": console,
        "clearsessions": console,
        "caddy": {"console-a": "service_healthy", "console-b": "service_healthy"},
    }
    for name, service in services.items():
        depends = {dependency: spec["condition"] for dependency, spec in (service.get("depends_on") or {}).items()}
        assert depends == expected.get(name, {}), name


def test_both_consoles_run_one_configuration_on_the_redis_backends(services):
    a, b = (services[name] for name in CONSOLES)
    assert a["environment"] == b["environment"]
    assert a["image"] == b["image"]
    environment = a["environment"]
    assert environment["SOFIIA_IDEMPOTENCY_BACKEND"] == "redis"
    assert environment["SOFIIA_RATE_LIMIT_BACKEND"] == "redis"
    assert environment["DJANGO_DEBUG"] == "0"
    assert environment["SOFIIA_REDIS_URL"].startswith("redis://redis:")
    assert re.match(r"^postgres://sofiia:[^@]+@postgres:5432/sofiia$", environment["DATABASE_URL"])
    assert "command" not in a  # the image's gunicorn command
    assert a["read_only"] is True
    assert "/tmp" in a["tmpfs"]


def test_the_consoles_set_only_variables_the_application_reads(services):
    known = app_variables()
    assert {"DATABASE_URL", "DJANGO_SECRET_KEY_FILE", "SOFIIA_NODES", "GUNICORN_WORKERS"} <= known
    for name in ("migrate", *CONSOLES):
        assert set(services[name]["environment"]) <= known, name


def test_secrets_come_from_the_environment_or_a_secret_file_never_from_the_compose_file(services, env):
    text = COMPOSE_FILE.read_text()
    assert not re.search(r"^\s*DJANGO_SECRET_KEY\s*:", text, flags=re.MULTILINE)
    for variable in ("POSTGRES_PASSWORD", "SOFIIA_AUDIT_KEYS"):
        assert re.search(r"\$\{" + variable + r":\?", text), f"{variable} must be required from the environment"
    for name in ("migrate", *CONSOLES):
        service = services[name]
        path = service["environment"]["DJANGO_SECRET_KEY_FILE"]
        assert path == "/run/secrets/django_secret_key"
        assert names(service["secrets"]) == ["django_secret_key"]
    assert services["console-a"]["environment"]["SOFIIA_AUDIT_KEYS"] == env["SOFIIA_AUDIT_KEYS"]


def test_without_its_required_settings_the_stack_refuses_to_start(env):
    for variable in ("POSTGRES_PASSWORD", "SOFIIA_AUDIT_KEYS", "SOFIIA_NODES", "SOFIIA_PUBLIC_HOST"):
        incomplete = {name: value for name, value in env.items() if name != variable}
        with pytest.raises(MissingVariable, match=variable):
            load(incomplete)


def test_the_console_configuration_passes_the_applications_own_checks(services, tmp_path):
    secret = tmp_path / "django_secret_key"
    secret.write_text("compose-test-secret-key-" + "k" * 40)
    environment = dict(services["console-a"]["environment"], DJANGO_SECRET_KEY_FILE=str(secret))
    check = "from django.conf import settings; print(settings.SOFIIA_IDEMPOTENCY_BACKEND, settings.DEBUG)"
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {check}"],
        cwd=PROJECT,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "sofiia.settings", **environment},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["redis", "False"]


def test_the_consoles_trust_forwarded_headers_from_caddy_alone(services, env):
    (subnet,) = [entry["subnet"] for entry in load(env)["networks"]["backend"]["ipam"]["config"]]
    caddy_address = services["caddy"]["networks"]["backend"]["ipv4_address"]
    assert ipaddress.ip_address(caddy_address) in ipaddress.ip_network(subnet)
    for name in CONSOLES:
        environment = services[name]["environment"]
        assert environment["SOFIIA_TRUSTED_PROXIES"] == caddy_address
        assert environment["GUNICORN_FORWARDED_ALLOW_IPS"] == caddy_address


def published(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(host_ip, published, target)`` of short (``[ip:]published:target``) and long port entries."""
    result = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            result.append((port.get("host_ip", ""), str(port["published"]), str(port["target"])))
        else:
            *host, public, target = port.split(":")
            result.append((host[0] if host else "", public, target))
    return result


def test_only_caddy_is_public_and_it_proxies_to_both_consoles(services, env):
    for name in SERVICES - {"caddy", *CONSOLES}:
        assert not services[name].get("ports"), f"{name} must not be published"
    assert [port for _, _, port in published(services["caddy"])] == ["80", "443"]
    # The instances are reachable from the host's loopback only (release checks), never publicly.
    assert published(services["console-a"]) == [("127.0.0.1", env["SOFIIA_PORT_A"], "8000")]
    assert published(services["console-b"]) == [("127.0.0.1", env["SOFIIA_PORT_B"], "8000")]
    caddy = services["caddy"]
    assert caddy["environment"]["SOFIIA_UPSTREAMS"].split() == ["console-a:8000", "console-b:8000"]
    assert ("/etc/caddy/Caddyfile", True) in [(target, ro) for _, target, ro in mounts(caddy["volumes"])]
    assert set(caddy["environment"]) <= caddyfile_variables()


def test_the_consoles_allow_the_host_names_their_health_checks_and_scrapes_use(services):
    allowed = services["console-a"]["environment"]["DJANGO_ALLOWED_HOSTS"].split(",")
    assert {"console-a", "console-b", "127.0.0.1"} <= set(allowed)
    assert allowed[0] == read_env_file(ENV_EXAMPLE)["SOFIIA_PUBLIC_HOST"]


def test_every_variable_the_compose_file_reads_is_in_the_example_env_file():
    assert variables_read() == set(read_env_file(ENV_EXAMPLE)) - COMPOSE_OWN_VARIABLES


def test_compose_v1_and_v2_both_accept_the_file_so_the_project_name_is_set_outside_it(env):
    # Compose v1 (Debian bookworm's docker-compose 1.29) rejects a top-level `name:`.
    assert "name" not in yaml.safe_load(COMPOSE_FILE.read_text())
    assert env["COMPOSE_PROJECT_NAME"] == "sofiia-console"


def test_the_console_image_is_built_once_by_the_migration(services):
    builders = [name for name, service in services.items() if "build" in service]
    assert builders == ["migrate"]
    ours = {name for name, service in services.items() if service["image"].startswith("sofiia-console:")}
    assert ours == {"migrate", *CONSOLES, "clearsessions"}


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="Compose v1 (docker-compose) is not installed")
def test_compose_v1_reads_the_file(env, tmp_path):
    env_file = tmp_path / "compose.env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in env.items()))
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE_FILE), "--env-file", str(env_file), "config", "--services"],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == SERVICES


def test_every_image_from_elsewhere_has_a_local_stand_in_for_the_registry_less_test(services):
    for name, service in services.items():
        if "build" not in service and not service["image"].startswith("sofiia-console:"):
            assert (PROJECT / "ops/standin" / f"{name}.Dockerfile").is_file(), name


def test_expired_sessions_are_cleared_daily_and_redis_evicts_nothing(services):
    clear = services["clearsessions"]
    assert clear["image"] == services["console-a"]["image"]
    assert "python manage.py clearsessions" in " ".join(clear["command"])
    assert "sleep 86400" in " ".join(clear["command"])
    assert clear["environment"] == services["console-a"]["environment"]
    command = services["redis"]["command"]
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
