"""API tokens used to be stored in plain text (DRF's authtoken table). Each one becomes an
ApiToken digest, so it keeps working, with the full lifetime from today; the plain texts are
deleted."""

import hashlib
from datetime import timedelta

from django.conf import settings
from django.db import migrations
from django.utils import timezone


def hash_plain_tokens(apps, schema_editor):
    try:
        Token = apps.get_model("authtoken", "Token")
    except LookupError:
        return  # DRF's authtoken app is no longer installed: there are no plain tokens to hash
    ApiToken = apps.get_model("operators", "ApiToken")
    expires_at = timezone.now() + timedelta(days=settings.SOFIIA_TOKEN_TTL_DAYS)
    taken = set(ApiToken.objects.values_list("prefix", flat=True))
    for token in Token.objects.all():
        prefix = token.key[:8]
        if prefix in taken:
            continue  # two plain tokens sharing a prefix: the later one is revoked, not guessed between
        taken.add(prefix)
        ApiToken.objects.create(
            user_id=token.user_id,
            prefix=prefix,
            digest=hashlib.sha256(token.key.encode()).hexdigest(),
            created_at=token.created,
            expires_at=expires_at,
        )
    Token.objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("operators", "0002_api_token"),
    ]

    operations = [
        migrations.RunPython(hash_plain_tokens, migrations.RunPython.noop),
    ]
