"""Search in every script (chats.search): the case-folded copies of message texts and chat
titles, filled for the rows already there, and the index behind a message search — a GIN
pg_trgm index on PostgreSQL (pg_trgm is a trusted extension: the database's owner may create
it), an FTS5 trigram table kept by triggers on SQLite. Also the admin's usage view (a proxy
model) and the index on message time it reads by."""

from django.conf import settings
from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations, models

from chats.search import PG_TRIGRAM_INDEX, sqlite_search_install, sqlite_search_uninstall

BATCH = 2000


def fill_search_copies(apps, schema_editor):
    for model_name, source, copy in (("Message", "text", "search_text"), ("Chat", "title", "title_search")):
        model = apps.get_model("chats", model_name)
        last = 0
        while True:
            batch = list(model.objects.filter(pk__gt=last).order_by("pk").only("pk", source)[:BATCH])
            if not batch:
                break
            for row in batch:
                setattr(row, copy, getattr(row, source).casefold())
            model.objects.bulk_update(batch, [copy])
            last = batch[-1].pk


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {PG_TRIGRAM_INDEX} ON chats_message USING gin (search_text gin_trgm_ops)"
        )
    sqlite_search_install(schema_editor)


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {PG_TRIGRAM_INDEX}")
    sqlite_search_uninstall(schema_editor)


class Migration(migrations.Migration):

    dependencies = [
        ('chats', '0005_conversation_settings_and_reply_metadata'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='chat',
            name='title_search',
            field=models.TextField(blank=True, default='', editable=False),
        ),
        migrations.AddField(
            model_name='message',
            name='search_text',
            field=models.TextField(blank=True, default='', editable=False),
        ),
        migrations.RunPython(fill_search_copies, migrations.RunPython.noop),
        TrigramExtension(),
        migrations.RunPython(create_index, drop_index),
        # The admin's usage view: its place in the admin index, and the date range it reads.
        migrations.CreateModel(
            name='MessageUsage',
            fields=[],
            options={
                'verbose_name': 'usage',
                'verbose_name_plural': 'usage',
                'proxy': True,
                'indexes': [],
                'constraints': [],
            },
            bases=('chats.message',),
        ),
        migrations.AddIndex(
            model_name='message',
            index=models.Index(fields=['role', 'ts'], name='message_role_ts_idx'),
        ),
    ]
