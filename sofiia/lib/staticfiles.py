"""The static files' storage: long-lived hashed names in production, plain names elsewhere."""

from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage  # type: ignore[import-untyped]


class HashedStaticFilesStorage(CompressedManifestStaticFilesStorage):
    """``collectstatic`` writes each file under a name with its content's hash (and gzip and
    Brotli copies); pages link to those names and WhiteNoise serves them with
    ``Cache-Control: max-age=315360000, immutable``: a changed file is a new name, never a
    stale cache.

    A name that ``collectstatic`` did not hash (it was not run: tests, the development
    server and test consoles serve the app directories through WhiteNoise's finders) is
    linked under its own name instead of failing the whole page."""

    def stored_name(self, name: str) -> str:
        try:
            return str(super().stored_name(name))
        except ValueError:
            return name
