from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from operators.errors import OperatorExists
from operators.services import operator_create


class Command(BaseCommand):
    help = (
        "Create an operator (a user in the operators group). With --token, the last line of output is "
        "a new API token alone: it is stored hashed and shown this once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="Login name of the operator.")
        parser.add_argument(
            "--password",
            help="Password for the web console, 12 characters or more (omit for an API-only operator).",
        )
        parser.add_argument("--token", action="store_true", help="Issue a new API token and print it last.")
        parser.add_argument(
            "--exist-ok",
            action="store_true",
            help="Do not fail when the user exists: make it an operator, set a given password again "
            "(which revokes its tokens) and, with --token, issue a new token.",
        )

    def handle(
        self, *args: Any, username: str, password: str | None, token: bool, exist_ok: bool, **options: Any
    ) -> None:
        try:
            get_user_model().username_validator(username)
        except ValidationError as exc:
            raise CommandError(f"invalid username {username!r}: {' '.join(exc.messages)}") from None
        if len(username) > 150:
            raise CommandError("username must be at most 150 characters")
        try:
            result = operator_create(username=username, password=password, with_token=token, exist_ok=exist_ok)
        except OperatorExists as exc:
            raise CommandError(f"{exc.detail} Use --exist-ok to keep it.") from None
        except ValidationError as exc:
            raise CommandError(f"the password is refused: {' '.join(exc.messages)}") from None
        verb = "Created" if result.created else "Kept existing"
        self.stdout.write(f"{verb} operator {username}.")
        if result.token is not None:
            self.stdout.write(result.token)
