#!/usr/bin/env python3
"""Exit 0 when a console instance answers ``GET /api/health`` with 200, else 1.

For the container health check (the slim image has no curl) and ops/multi_instance.sh.
Standard library only. 200 includes ``"status": "degraded"`` (a Redis backend down): the
instance still serves. The request carries the first ``DJANGO_ALLOWED_HOSTS`` entry as its
Host header, so the check passes whatever host names the deployment allows.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request
from urllib.parse import urlsplit

DEFAULT_URL = "http://127.0.0.1:8000/api/health"


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
    parser.add_argument("url", nargs="?", default=DEFAULT_URL, help=f"health URL (default {DEFAULT_URL})")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer (default 3)")
    parser.add_argument("--host", help="Host header to send (default: the first DJANGO_ALLOWED_HOSTS entry)")
    args = parser.parse_args(argv)
    host = args.host or host_header(os.environ.get("DJANGO_ALLOWED_HOSTS"))
    healthy, detail = check(args.url, host=host, timeout=args.timeout)
    print(f"{'PASS' if healthy else 'FAIL'} health: {detail}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
