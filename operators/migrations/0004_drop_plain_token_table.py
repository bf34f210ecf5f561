"""DRF's authtoken app is no longer installed: API tokens are ``ApiToken`` digests. The plain
token table it left behind (emptied by 0003) is dropped where it still exists."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("operators", "0003_hash_existing_tokens"),
    ]

    operations = [
        migrations.RunSQL("DROP TABLE IF EXISTS authtoken_token", migrations.RunSQL.noop),
    ]
