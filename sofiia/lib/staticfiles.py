"""The static files' storage: long-lived hashed names in production, plain names elsewhere."""

from __future__ import annotations

from typing import Any

from django.core.files.base import ContentFile
from rcssmin import cssmin  # type: ignore[import-untyped]
from rjsmin import jsmin  # type: ignore[import-untyped]
from whitenoise.storage import CompressedManifestStaticFilesStorage  # type: ignore[import-untyped]

# The console's own files: written readable, with their comments, and stored minified.
MINIFIED_PREFIX = "console/"
_MINIFIERS = {".js": jsmin, ".css": cssmin}


class HashedStaticFilesStorage(CompressedManifestStaticFilesStorage):
    """``collectstatic`` writes each file under a name with its content's hash (and gzip and
    Brotli copies); pages link to those names and WhiteNoise serves them with
    ``Cache-Control: max-age=315360000, immutable``: a changed file is a new name, never a
    stale cache. The console's script and style are stored minified (:data:`MINIFIED_PREFIX`):
    the chat page's weight budget counts them as served, uncompressed.

    A name that ``collectstatic`` did not hash (it was not run: tests, the development
    server and test consoles serve the app directories through WhiteNoise's finders) is
    linked under its own name instead of failing the whole page."""

    def stored_name(self, name: str) -> str:
        try:
            return str(super().stored_name(name))
        except ValueError:
            return name

    def _save(self, name: str, content: Any) -> str:
        minify = next((fn for suffix, fn in _MINIFIERS.items() if name.endswith(suffix)), None)
        if minify is not None and name.startswith(MINIFIED_PREFIX):
            content.seek(0)
            text = content.read()
            text = text.decode("utf-8") if isinstance(text, bytes) else text
            content = ContentFile(minify(text).encode("utf-8"))
        return str(super()._save(name, content))
