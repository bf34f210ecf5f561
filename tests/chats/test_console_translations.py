"""The console's Ukrainian catalogue: complete, and the committed .mo is the .po compiled."""

from __future__ import annotations

import ast
import gettext
import re
from pathlib import Path

import chats

LOCALE = Path(chats.__file__).parent / "locale" / "uk" / "LC_MESSAGES"


def po_entries() -> dict[str, str]:
    """msgid → msgstr of every entry but the header; fuzzy entries are refused."""
    text = (LOCALE / "django.po").read_text(encoding="utf-8")
    assert "#, fuzzy" not in text
    entries = {}
    for block in text.split("\n\n"):
        match = re.search(r'^msgid ((?:".*"\n?)+)msgstr ((?:".*"\n?)+)', block, re.M)
        if match is None:
            continue
        msgid, msgstr = (
            "".join(ast.literal_eval(line) for line in group.split("\n") if line) for group in match.groups()
        )
        if msgid:
            entries[msgid] = msgstr
    return entries


def test_every_console_word_has_a_ukrainian_translation():
    entries = po_entries()
    assert len(entries) > 50
    assert [msgid for msgid, msgstr in entries.items() if not msgstr] == []


def test_the_compiled_catalogue_matches_the_po_file():
    with open(LOCALE / "django.mo", "rb") as compiled:
        catalogue = gettext.GNUTranslations(compiled)
    assert {msgid: catalogue.gettext(msgid) for msgid in po_entries()} == po_entries()


def test_placeholders_survive_translation():
    for msgid, msgstr in po_entries().items():
        assert sorted(re.findall(r"%\(\w+\)s|\{\w+\}", msgid)) == sorted(re.findall(r"%\(\w+\)s|\{\w+\}", msgstr)), (
            msgid
        )
