"""Gunicorn settings for Sofiia Console. Command-line flags override these.

Worker model: gevent (``GUNICORN_WORKER_CLASS``, default ``gevent``). A send spends seconds
waiting on its router node; with gevent that wait is a parked greenlet, not a held thread,
so one worker carries ``GUNICORN_WORKER_CONNECTIONS`` requests at once and health checks
and page loads go on beside a thousand slow sends (docs/performance.md has the evidence).
``gthread`` stays selectable for comparison.

Metrics: every worker is a separate process, so prometheus_client runs in multiprocess
mode. Each gunicorn master gets its own metrics directory (made empty at start, removed
at exit), workers write their samples there, ``/metrics`` sums them, and the samples of
a worker that died are marked so its gauges disappear while its counters keep counting.
The master also makes an instance directory that its workers share for the per-node
in-flight limit (``SOFIIA_NODE_MAX_INFLIGHT``, see ``nodes.bulkhead``).
"""

from __future__ import annotations

import os

# The patch must come before anything else is imported. This file is loaded by the master,
# and whatever it imports (Django's settings pull in django.db) is inherited by the forked
# workers: imported unpatched, Django's per-thread connection storage would be shared by
# every greenlet of a worker, and locks created before the patch would block the whole hub.
# gunicorn's gevent worker patches again after the fork, which is then a no-op.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gevent").strip().lower() or "gevent"
if worker_class == "gevent":
    import warnings

    from gevent import monkey

    with warnings.catch_warnings():
        # gunicorn imported ssl before reading this file; its own worker patches at the same point.
        warnings.simplefilter("ignore", monkey.MonkeyPatchWarning)
        monkey.patch_all()

import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from typing import Any  # noqa: E402

from sofiia.lib.env import env_choice, env_float, env_int, env_str  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sofiia.settings")
# Workers take their PostgreSQL connections from a pool (SOFIIA_DB_POOL_MAX per worker).
os.environ.setdefault("SOFIIA_DB_POOL", "1")

worker_class = env_choice("GUNICORN_WORKER_CLASS", "gevent", ("gevent", "gthread"))
bind = env_str("GUNICORN_BIND", "127.0.0.1:8000")
workers = env_int("GUNICORN_WORKERS", 2, minimum=1)
# gevent: requests one worker serves at once; sends waiting on nodes cost a greenlet each.
worker_connections = env_int("GUNICORN_WORKER_CONNECTIONS", 1000, minimum=1)
# gthread only.
threads = env_int("GUNICORN_THREADS", 4, minimum=1)
# A worker that has not reported to the master for this long is stuck (its event loop or
# all its threads blocked) and is restarted.
timeout = env_int("GUNICORN_TIMEOUT", 60, minimum=1)
# On SIGTERM a worker stops accepting and lets the sends in flight finish: a node call
# ends within the infer timeout, the database writes around it within a few seconds more.
_infer_timeout = env_float("SOFIIA_INFER_TIMEOUT", 30.0)
graceful_timeout = env_int("GUNICORN_GRACEFUL_TIMEOUT", int(_infer_timeout) + 15, minimum=1)
# Seconds an idle client connection is kept open for its next request. A stopping worker
# waits for idle connections too, so this is also the least a graceful stop takes when a
# client keeps one open. Behind Caddy, keep it longer than Caddy's upstream keep-alive.
# The gevent worker also gives a client this long to send a request's line and headers (the
# first request's too), so a client trickling its headers is cut off after it: hence at
# least 1 (0 would mean no keep-alive and no such limit). Bodies have their own deadline,
# SOFIIA_REQUEST_BODY_TIMEOUT (sofiia.lib.request_body).
keepalive = env_int("GUNICORN_KEEPALIVE", 5, minimum=1)
# The longest request line gunicorn accepts (its maximum): a long query string still reaches
# the application, which answers it in JSON. Past it, gunicorn answers 414 itself — in JSON
# too (below).
limit_request_line = 8190
# Trust X-Forwarded-* only from the proxy in front (Caddy); see SOFIIA_TRUSTED_PROXIES too.
forwarded_allow_ips = env_str("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
# gunicorn's command socket is not used, and the container's filesystem is read-only.
control_socket_disable = True
# The application writes one JSON access line per request itself (sofiia.access), so
# gunicorn's own access lines are dropped; SOFIIA_LOG_LEVEL governs the rest.
accesslog = None
_log_level = env_choice("SOFIIA_LOG_LEVEL", "info", ("debug", "info", "warning", "error")).upper()
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "sofiia.lib.logging.JsonFormatter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "json"},
    },
    "root": {"level": _log_level, "handlers": ["console"]},
    "loggers": {
        "gunicorn.error": {
            "level": _log_level,
            "handlers": ["console"],
            "propagate": False,
            "qualname": "gunicorn.error",
        },
        "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False, "qualname": "gunicorn.access"},
    },
}

_owned_dirs: list[str] = []

# gunicorn answers a request it cannot parse (a request line or headers too long or
# malformed) itself, before the application sees it, with an HTML page. The contract wants
# JSON errors: its writer is replaced by one that writes the contract's error body.
_GUNICORN_ERROR_CODES = {
    400: "bad_request",
    403: "forbidden",
    414: "uri_too_long",
    417: "expectation_failed",
    431: "request_header_fields_too_large",
    500: "internal_error",
    501: "not_implemented",
}


def _write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    import json

    from gunicorn import util

    code = _GUNICORN_ERROR_CODES.get(status_int, "server_error" if status_int >= 500 else "bad_request")
    body = json.dumps({"error": code, "detail": reason}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


def _answer_parse_errors_in_json() -> None:
    from gunicorn import util

    util.write_error = _write_json_error


_answer_parse_errors_in_json()


def _prepare_metrics_dir() -> None:
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        os.makedirs(path, exist_ok=True)
        for name in os.listdir(path):
            if name.endswith(".db"):
                os.unlink(os.path.join(path, name))
    else:
        path = tempfile.mkdtemp(prefix="sofiia-metrics-")
        _owned_dirs.append(path)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path


def _prepare_instance_dir() -> None:
    path = os.environ.get("SOFIIA_INSTANCE_DIR")
    if path:
        os.makedirs(path, exist_ok=True)
    else:
        path = tempfile.mkdtemp(prefix="sofiia-instance-")
        _owned_dirs.append(path)
        os.environ["SOFIIA_INSTANCE_DIR"] = path


_prepare_metrics_dir()
_prepare_instance_dir()


def on_starting(server: Any) -> None:
    """Check the configuration once in the master, so a bad variable is one line."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        settings.INSTALLED_APPS  # noqa: B018
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"configuration error: {exc}\n")
        sys.exit(2)


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    for path in _owned_dirs:
        shutil.rmtree(path, ignore_errors=True)
