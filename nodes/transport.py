"""The HTTP session the console uses to talk to router nodes.

``requests`` (urllib3, http.client) apply a timeout to each socket operation, so a node that
sends its status line or body a byte at a time could hold a call for as long as it liked.
The session's connections read a response through :class:`_DeadlineReader`, which gives
each read only the time left before the call's deadline (``call_deadline``): the deadline
is total, for the headers and the body together, whatever the node does.
"""

from __future__ import annotations

import http.client
import io
import os
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from sofiia.lib.request_id import REQUEST_ID_HEADER, current_request_id

_session: requests.Session | None = None
_session_lock = threading.Lock()
# The monotonic time by which the node call running in this thread (greenlet) must be over.
_deadline: ContextVar[float | None] = ContextVar("node_call_deadline", default=None)


@contextmanager
def call_deadline(deadline: float) -> Iterator[None]:
    """Responses read within the block give up at ``deadline`` (``time.monotonic()``)."""
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


class _DeadlineReader(io.RawIOBase):
    """The response's socket reads, each given only the time left before the deadline."""

    def __init__(self, inner: io.RawIOBase, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._inner, self._sock, self._deadline = inner, sock, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the node call's deadline has passed")
        self._sock.settimeout(remaining)
        return self._inner.readinto(buffer)

    def close(self) -> None:
        self._inner.close()
        super().close()


class _DeadlineResponse(http.client.HTTPResponse):
    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        deadline = _deadline.get()
        if deadline is not None:
            # Nothing has been read yet: the buffered file is swapped before the status line
            # (detached, so that it does not close the socket's file when it is collected).
            self.fp = io.BufferedReader(_DeadlineReader(self.fp.detach(), sock, deadline))


class _DeadlineHTTPConnection(HTTPConnection):
    response_class = _DeadlineResponse


class _DeadlineHTTPSConnection(HTTPSConnection):
    response_class = _DeadlineResponse


class _DeadlineHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


_POOL_CLASSES = {"http": _DeadlineHTTPConnectionPool, "https": _DeadlineHTTPSConnectionPool}


class _NodeAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOL_CLASSES

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            # A SOCKS manager has connection classes of its own.
            manager.pool_classes_by_scheme = _POOL_CLASSES
        return manager


def http_session() -> requests.Session:
    """One pooled session per process, created after gunicorn forks the worker."""
    global _session
    if _session is None:
        with _session_lock:
            if _session is None:
                session = requests.Session()
                # One connection pool per node, as large as the sends a node may have in flight:
                # a smaller one would open and throw away a connection per send under load.
                adapter = _NodeAdapter(
                    pool_connections=max(8, len(settings.SOFIIA_NODES)),
                    pool_maxsize=settings.SOFIIA_NODE_MAX_INFLIGHT,
                    max_retries=0,
                )
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                session.headers["User-Agent"] = "sofiia-console"
                # Bodies are read as sent: a compressed one could inflate far past the size cap.
                session.headers["Accept-Encoding"] = "identity"
                session.headers["Accept"] = "application/json"
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
