"""Case-insensitive substring search over messages and chat titles, in every script, on both
databases, served by an index.

Why not ``icontains``: SQLite's ``LIKE`` and ``lower()`` fold ASCII only, and PostgreSQL's
``lower()``/``ILIKE`` fold by the database's ``LC_CTYPE`` (``C`` folds ASCII only): "Олена"
would not be found by "олена" on one or both. So the text is folded once, in Python
(:meth:`str.casefold`, the Unicode rules), when it is written: ``Message.search_text`` and
``Chat.title_search`` hold the folded copy, and a query, folded the same way, is matched
against it with a plain ``LIKE '%…%'`` (Django's ``contains``, which escapes ``%``, ``_``
and ``\\``).

The copy is filled by ``Message.save()``/``Chat.save()`` and by ``bulk_create`` of their
managers (``objects.create`` goes through ``save``). A queryset ``update()`` of ``text`` or
``title`` bypasses both and must set the folded copy itself (:func:`search_fold`); nothing in
the application updates either that way.

The index behind a message search:

- **PostgreSQL**: a GIN ``pg_trgm`` index on ``search_text`` (``message_search_trgm_idx``),
  which serves ``LIKE '%q%'`` for a query of three characters or more.
- **SQLite**: an FTS5 table with the ``trigram`` tokenizer (``chats_message_fts``, external
  content: it stores only its index, kept in step with ``chats_message`` by triggers). A query
  of three characters or more asks it for the matching rows (``MATCH`` of the query as one
  phrase: a run of consecutive trigrams, i.e. a substring) and rechecks them with ``LIKE``.

A query of one or two characters has no trigram to look up: it is answered from the
operator's own chats (``chat_owner_created_idx``) and their messages
(``message_chat_ts_idx``), never from a scan of every message.

On SQLite, Django remakes a table for some schema changes (a copy under a new name): a later
migration that does that to ``chats_message`` must call :func:`sqlite_search_install` again,
since the triggers go with the old table.
"""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL

# Below this many characters a trigram index has nothing to look up.
TRIGRAM_MIN_LENGTH = 3
SEARCH_MAX_LENGTH = 200

PG_TRIGRAM_INDEX = "message_search_trgm_idx"
SQLITE_FTS_TABLE = "chats_message_fts"

_SQLITE_INSTALL = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS chats_message_fts USING fts5("
    "search_text, content='chats_message', content_rowid='id', tokenize='trigram')",
    """CREATE TRIGGER IF NOT EXISTS chats_message_fts_insert AFTER INSERT ON chats_message BEGIN
        INSERT INTO chats_message_fts(rowid, search_text) VALUES (new.id, new.search_text);
    END""",
    """CREATE TRIGGER IF NOT EXISTS chats_message_fts_delete AFTER DELETE ON chats_message BEGIN
        INSERT INTO chats_message_fts(chats_message_fts, rowid, search_text)
            VALUES ('delete', old.id, old.search_text);
    END""",
    """CREATE TRIGGER IF NOT EXISTS chats_message_fts_update AFTER UPDATE OF search_text ON chats_message BEGIN
        INSERT INTO chats_message_fts(chats_message_fts, rowid, search_text)
            VALUES ('delete', old.id, old.search_text);
        INSERT INTO chats_message_fts(rowid, search_text) VALUES (new.id, new.search_text);
    END""",
    # Index what is already there.
    "INSERT INTO chats_message_fts(chats_message_fts) VALUES ('rebuild')",
]
_SQLITE_UNINSTALL = [
    "DROP TRIGGER IF EXISTS chats_message_fts_insert",
    "DROP TRIGGER IF EXISTS chats_message_fts_delete",
    "DROP TRIGGER IF EXISTS chats_message_fts_update",
    "DROP TABLE IF EXISTS chats_message_fts",
]


def search_fold(text: str) -> str:
    """The form text is stored and matched in: Unicode case folding ("ОЛЕНА" → "олена")."""
    return text.casefold()


def sqlite_search_install(schema_editor: BaseDatabaseSchemaEditor) -> None:
    """The FTS5 trigram index of messages and its triggers (SQLite only; idempotent)."""
    if schema_editor.connection.vendor != "sqlite":
        return
    for statement in _SQLITE_INSTALL:
        schema_editor.execute(statement)


def sqlite_search_uninstall(schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor != "sqlite":
        return
    for statement in _SQLITE_UNINSTALL:
        schema_editor.execute(statement)


def _fts_phrase(folded: str) -> str:
    # One FTS5 string: the whole query as a phrase, its double quotes doubled.
    return '"' + folded.replace('"', '""') + '"'


def search_filter_messages(messages: QuerySet[Any], *, query: str) -> QuerySet[Any]:
    """``messages`` whose text contains ``query``, letter case ignored (see the module)."""
    folded = search_fold(query)
    matched = messages.filter(search_text__contains=folded)
    if connection.vendor == "sqlite" and len(folded) >= TRIGRAM_MIN_LENGTH:
        # The recheck (``contains``) stays: the trigram phrase finds candidates; LIKE decides.
        matched = matched.filter(
            pk__in=RawSQL(  # noqa: S611 - the query is a bound parameter
                f"SELECT rowid FROM {SQLITE_FTS_TABLE} WHERE {SQLITE_FTS_TABLE} MATCH %s",  # noqa: S608
                [_fts_phrase(folded)],
            )
        )
    return matched
