"""Render the agent replies stored before replies were rendered when stored.

Until this migration a page rendered every reply's Markdown each time it was shown; now the
send path stores the rendered HTML in ``Message.html`` and a reply with empty ``html`` is shown
as plain text. This gives the replies already stored their HTML, in batches, each batch in a
transaction of its own (the migration is not atomic as a whole): an interrupted run keeps
the batches it finished, and running it again picks up where it stopped, since only replies
still without HTML are read.

It calls the renderer of the application, ``chats.markdown.reply_html``, rather than a frozen
copy of it: the point is that old replies read exactly as new ones, the renderer is also the
sanitiser (a copy would be a second one to keep safe), and its only input is the text, never
a model. The import is made when there is a reply to render, so a new database never needs
it. Should ``reply_html`` ever change its name or signature, this file changes with it.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations, transaction

BATCH = 500


def render_stored_replies(apps: Any, schema_editor: Any) -> None:
    Message = apps.get_model("chats", "Message")
    db = schema_editor.connection.alias
    replies = Message.objects.using(db).filter(role="agent", html="").order_by("pk")
    last = 0
    while True:
        batch = list(replies.filter(pk__gt=last).only("pk", "text")[:BATCH])
        if not batch:
            return
        from chats.markdown import reply_html

        rendered = []
        for reply in batch:
            reply.html = reply_html(reply.text)
            if reply.html:
                rendered.append(reply)
        with transaction.atomic(using=db):
            Message.objects.using(db).bulk_update(rendered, ["html"])
        last = batch[-1].pk


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("chats", "0006_search"),
    ]

    operations = [
        migrations.RunPython(render_stored_replies, migrations.RunPython.noop, elidable=True),
    ]
