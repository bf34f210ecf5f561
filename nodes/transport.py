"""The HTTP session the console uses to talk to router nodes."""

from __future__ import annotations

import os
import threading
import urllib.request

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

from sofiia.lib.request_id import REQUEST_ID_HEADER, current_request_id

_session: requests.Session | None = None
_session_lock = threading.Lock()


def http_session() -> requests.Session:
    """One pooled session per process, created after gunicorn forks the worker."""
    global _session
    if _session is None:
        with _session_lock:
            if _session is None:
                session = requests.Session()
                # One connection pool per node, as large as the sends a node may have in flight:
                # a smaller one would open and throw away a connection per send under load.
                adapter = HTTPAdapter(
                    pool_connections=max(8, len(settings.SOFIIA_NODES)),
                    pool_maxsize=settings.SOFIIA_NODE_MAX_INFLIGHT,
                    max_retries=0,
                )
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                session.headers["User-Agent"] = "sofiia-console"
                # The environment's proxies and CA bundle are read once here instead of on
                # every call (requests scans the whole environment per request otherwise).
                session.trust_env = False
                session.proxies = urllib.request.getproxies()
                session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
                _session = session
    return _session


def request_id_headers(request_id: str | None = None) -> dict[str, str]:
    """The request's id for the node, so its logs line up with ours (``X-Request-ID``)."""
    request_id = request_id or current_request_id()
    return {REQUEST_ID_HEADER: request_id} if request_id else {}


def _forget_session() -> None:
    global _session
    _session = None


os.register_at_fork(after_in_child=_forget_session)
