"""The HTTP session the console uses to talk to router nodes."""

from __future__ import annotations

import os
import threading

import requests
from requests.adapters import HTTPAdapter

_session: requests.Session | None = None
_session_lock = threading.Lock()


def http_session() -> requests.Session:
    """One pooled session per process, created after gunicorn forks the worker."""
    global _session
    if _session is None:
        with _session_lock:
            if _session is None:
                session = requests.Session()
                adapter = HTTPAdapter(pool_connections=8, pool_maxsize=32, max_retries=0)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                session.headers["User-Agent"] = "sofiia-console"
                _session = session
    return _session


def _forget_session() -> None:
    global _session
    _session = None


os.register_at_fork(after_in_child=_forget_session)
