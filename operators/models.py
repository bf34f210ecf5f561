from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class ApiToken(models.Model):
    """An operator's API token.

    Only the token's SHA-256 digest is stored: the token itself is shown once, when it is
    issued, and cannot be read back from the database. Its first characters (``prefix``) find
    and name it. It expires (``SOFIIA_TOKEN_TTL_DAYS``) and is revoked when the operator's
    password changes.
    """

    PREFIX_LENGTH = 8

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    prefix = models.CharField(max_length=PREFIX_LENGTH, unique=True)
    digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()

    class Meta:
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}…"
