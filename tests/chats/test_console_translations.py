"""The console's Ukrainian catalogue: complete, and the committed .mo is the .po compiled."""

from __future__ import annotations

import ast
import gettext
import os
import re
import shutil
import subprocess
import sys
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


def msgids(po: Path) -> set[str]:
    """Every msgid (and plural msgid) of a catalogue, the header's empty one left out."""
    found = set()
    for match in re.finditer(r'^msgid(?:_plural)? ((?:".*"\n)+)', po.read_text(encoding="utf-8"), re.M):
        found.add("".join(ast.literal_eval(line) for line in match.group(1).splitlines()))
    return found - {""}


def test_the_catalogue_has_every_word_the_console_marks_for_translation(tmp_path):
    # makemessages run on a copy of the app: what the code and templates mark now, against
    # what the committed catalogue translates (the 400 page's words were once left out).
    app = Path(chats.__file__).parent
    copy = tmp_path / "chats"
    shutil.copytree(app, copy, ignore=shutil.ignore_patterns("__pycache__", "static", "migrations"))
    project = app.parent
    env = {**os.environ, "PYTHONPATH": str(project), "DJANGO_SETTINGS_MODULE": "sofiia.settings", "DJANGO_DEBUG": "1"}
    subprocess.run(
        [sys.executable, "-P", "-m", "django", "makemessages", "-l", "uk", "--no-location", "--no-obsolete"],
        cwd=copy,
        env=env,
        check=True,
        capture_output=True,
    )
    extracted = copy / "locale" / "uk" / "LC_MESSAGES" / "django.po"
    assert msgids(extracted) == msgids(LOCALE / "django.po")
    assert "#, fuzzy" not in extracted.read_text(encoding="utf-8")
