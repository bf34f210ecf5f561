"""A password validator for what Django's leave through: passwords of 12 characters or more
that are still among the first an attacker tries.

- **Low variety**: fewer than ``MIN_DISTINCT`` different characters (``aaaaaaaaaaaa``,
  ``abababababab``), a unit of at most ``MAX_REPEATED_UNIT`` characters repeated
  (``abcdabcdabcd``) or a run of consecutive characters (``abcdefghijkl``, ``lkjihgfedcba``).
- **A word and a year**: a season, month, weekday, a word like ``password`` or ``welcome``, or
  the user's own name, with digits (a year, a date) and symbols around it and letters swapped for
  look-alike digits: ``Summer2024!!``, ``!!january25``, ``P@ssw0rd2024!``, ``alice1990!!!``.
  Password-spraying lists are built from exactly these.

Listed in ``AUTH_PASSWORD_VALIDATORS``, so it applies wherever Django validates a password:
``create_operator --password`` and the admin's user forms.
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Any

from django.core.exceptions import ValidationError

MIN_DISTINCT = 5
MAX_REPEATED_UNIT = 4

_SEASONS = ("spring", "summer", "autumn", "fall", "winter")
_MONTHS = (
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
)  # fmt: skip
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WORDS = (
    "password", "passwort", "pass", "welcome", "letmein", "qwerty", "admin", "administrator",
    "changeme", "secret", "login", "master", "default", "sofiia", "console", "operator", "hello",
    "iloveyou", "football", "monkey", "dragon", "sunshine", "princess",
)  # fmt: skip
PREDICTABLE_WORDS = frozenset(_SEASONS + _MONTHS + tuple(m[:3] for m in _MONTHS) + _DAYS + _WORDS)

_LOOK_ALIKES = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
# Symbols anywhere, and up to six digits (a year, a count, a date) at either end, are what spraying
# lists add to a word; what is left is the word.
_WORD_AND_DIGITS = (re.compile(r"(?P<word>.+?)\d{0,6}"), re.compile(r"\d{0,6}(?P<word>.+?)"))


def _is_repeated_unit(password: str) -> bool:
    return any(
        password == (password[:size] * (len(password) // size + 1))[: len(password)]
        for size in range(1, min(MAX_REPEATED_UNIT, len(password) // 2) + 1)
    )


def _is_run(password: str) -> bool:
    steps = {ord(b) - ord(a) for a, b in pairwise(password)}
    return len(steps) == 1 and steps <= {1, -1}


def _personal_words(user: Any) -> set[str]:
    words: set[str] = set()
    for attribute in ("username", "first_name", "last_name", "email"):
        value = getattr(user, attribute, None)
        if isinstance(value, str) and value:
            value = value.partition("@")[0] if attribute == "email" else value
            words.add(re.sub(r"[\W_]+", "", value.lower()))
    return {word for word in words if len(word) >= 3}


def _core_word(password: str, patterns: tuple[re.Pattern[str], ...]) -> set[str]:
    """The words left once symbols and a number at either end are taken away."""
    letters_and_digits = re.sub(r"[^\w@$]|_", "", password.lower())
    found = set()
    for pattern in patterns:
        match = pattern.fullmatch(letters_and_digits)
        if match:
            found.add(match["word"].translate(_LOOK_ALIKES))
    return found


class PredictablePasswordValidator:
    """Refuse low-variety passwords and a guessable word with a year or symbols added."""

    def __init__(self, min_distinct: int = MIN_DISTINCT) -> None:
        self.min_distinct = min_distinct

    def validate(self, password: str, user: Any = None) -> None:
        lowered = password.lower()
        if len(set(lowered)) < self.min_distinct or _is_repeated_unit(lowered) or _is_run(lowered):
            raise ValidationError(
                "This password repeats too few characters (like “aaaaaaaaaaaa” or “abcabcabcabc”) "
                "or runs through them in order (like “abcdefghijkl”).",
                code="password_low_variety",
            )
        guessable = PREDICTABLE_WORDS | _personal_words(user)
        if _core_word(password, _WORD_AND_DIGITS) & guessable:
            raise ValidationError(
                "This password is a guessable word (a season, a month, “password”, your name…) with a year "
                "or symbols added, like “Summer2024!!”.",
                code="password_predictable",
            )

    def get_help_text(self) -> str:
        return (
            f"Your password must use at least {self.min_distinct} different characters, and must not be a "
            "season, a month, a common word or your name with a year or symbols added."
        )
