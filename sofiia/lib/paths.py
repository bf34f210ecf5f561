"""Which requests are the API's (imports nothing of DRF: DRF's settings import the
authentication classes that ask)."""

from __future__ import annotations

import re

API_PREFIX = "/api/"
# What a client may mean by a path under /api/: repeated slashes and any case ("//api/x",
# "/API/x") resolve to no view, but they are still answered in the API's JSON.
_API_PATH = re.compile(r"^/+api(?:/|$)", re.IGNORECASE)


def is_api_path(path: str) -> bool:
    return _API_PATH.match(path) is not None
