#!/usr/bin/env python3
"""Exit 0 when a console instance answers a health URL with 200, else 1.

For the container health check (the slim image has no curl) and ops/multi_instance.sh.
Standard library only. Without a URL it asks the instance's own liveness endpoint,
``/livez``, at the address gunicorn listens on (``GUNICORN_BIND``): the container is
restarted only when the process is stuck, never because a node is slow or the database is
away (``/readyz`` tells the proxy that). For ``/readyz``, 200 includes ``"status": "degraded"``
(a Redis backend down): the instance still serves. The request carries the first
``DJANGO_ALLOWED_HOSTS`` entry as its Host header, so the check passes whatever host names
the deployment allows.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request
from urllib.parse import urlsplit

DEFAULT_BIND = "127.0.0.1:8000"
_ANY_ADDRESS = {"", "0.0.0.0", "::", "[::]"}  # noqa: S104 - recognised, never bound here


def default_url(bind: str | None) -> str:
    """``/livez`` at the first address of a gunicorn ``--bind`` value (``HOST:PORT``)."""
    first = (bind or DEFAULT_BIND).split(",")[0].strip()
    if first.startswith(("unix:", "fd://")):
        raise ValueError(f"GUNICORN_BIND {first!r} is not a TCP address; pass the health URL")
    host, _, port = first.rpartition(":")
    if not port.isdigit():
        host, port = first, "8000"
    if host in _ANY_ADDRESS:
        host = "127.0.0.1"
    return f"http://{host}:{port}/livez"


def host_header(allowed_hosts: str | None) -> str | None:
    """A Host value that Django's ALLOWED_HOSTS accepts, or None to keep the URL's own."""
    for entry in (allowed_hosts or "").split(","):
        entry = entry.strip().lstrip(".")
        if entry and entry != "*":
            return entry
    return None


def check(url: str, *, host: str | None, timeout: float) -> tuple[bool, str]:
    if urlsplit(url).scheme not in ("http", "https"):
        return False, f"not an http(s) URL: {url}"
    request = urllib.request.Request(url, headers={"Host": host} if host else {})  # noqa: S310 - scheme checked above
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked above
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        return False, f"{url} unreachable ({getattr(exc, 'reason', exc)})"
    return status == 200, f"{url} answered {status}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check that a Sofiia Console instance is healthy.")
    parser.add_argument("url", nargs="?", help="health URL (default: /livez at GUNICORN_BIND, else 127.0.0.1:8000)")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer (default 3)")
    parser.add_argument("--host", help="Host header to send (default: the first DJANGO_ALLOWED_HOSTS entry)")
    args = parser.parse_args(argv)
    host = args.host or host_header(os.environ.get("DJANGO_ALLOWED_HOSTS"))
    try:
        url = args.url or default_url(os.environ.get("GUNICORN_BIND"))
    except ValueError as exc:
        print(f"FAIL health: {exc}")
        return 1
    healthy, detail = check(url, host=host, timeout=args.timeout)
    print(f"{'PASS' if healthy else 'FAIL'} health: {detail}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
