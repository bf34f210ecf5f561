"""Gunicorn settings for Sofiia Console. Command-line flags override these.

Metrics: every worker is a separate process, so prometheus_client runs in multiprocess
mode. Each gunicorn master gets its own metrics directory (made empty at start, removed
at exit), workers write their samples there, ``/metrics`` sums them, and the samples of
a worker that died are marked so its gauges disappear while its counters keep counting.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import Any

from sofiia.lib.env import env_int, env_str

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sofiia.settings")

bind = env_str("GUNICORN_BIND", "127.0.0.1:8000")
workers = env_int("GUNICORN_WORKERS", 2, minimum=1)
worker_class = "gthread"
threads = env_int("GUNICORN_THREADS", 4, minimum=1)
# The infer timeout is 30 s by default; a worker silent for longer than this is stuck.
timeout = env_int("GUNICORN_TIMEOUT", 60, minimum=1)
graceful_timeout = env_int("GUNICORN_GRACEFUL_TIMEOUT", 30, minimum=1)
keepalive = 5
# Trust X-Forwarded-* only from the proxy in front (Caddy); see SOFIIA_TRUSTED_PROXIES too.
forwarded_allow_ips = env_str("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = None  # the application writes one JSON access line per request itself
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "sofiia.lib.logging.JsonFormatter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "json"},
        "error_console": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "json"},
    },
    "root": {"level": "INFO", "handlers": ["console"]},
    "loggers": {
        "gunicorn.error": {
            "level": "INFO",
            "handlers": ["error_console"],
            "propagate": False,
            "qualname": "gunicorn.error",
        },
        "gunicorn.access": {
            "level": "INFO",
            "handlers": ["console"],
            "propagate": False,
            "qualname": "gunicorn.access",
        },
    },
}

_owned_metrics_dir: str | None = None


def _prepare_metrics_dir() -> None:
    global _owned_metrics_dir
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        os.makedirs(path, exist_ok=True)
        for name in os.listdir(path):
            if name.endswith(".db"):
                os.unlink(os.path.join(path, name))
    else:
        _owned_metrics_dir = tempfile.mkdtemp(prefix="sofiia-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = _owned_metrics_dir


_prepare_metrics_dir()


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
    if _owned_metrics_dir:
        shutil.rmtree(_owned_metrics_dir, ignore_errors=True)
