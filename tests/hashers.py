"""A password hasher for tests that do not test hashing itself."""

from __future__ import annotations

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class OneRoundPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    """PBKDF2 with a single round, under the production algorithm's name.

    The round count is part of each stored hash, so a console started by a test (with the
    production hashers) still verifies these passwords, at the cost of one round.
    """

    iterations = 1


class CountingPBKDF2PasswordHasher(OneRoundPBKDF2PasswordHasher):
    """Counts how often a password is hashed or checked: to prove a refusal came before it."""

    runs = 0

    def encode(self, password: str, salt: str, iterations: int | None = None) -> str:
        type(self).runs += 1
        return super().encode(password, salt, iterations)
