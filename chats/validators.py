from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator

AGENT_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"

_agent_characters = RegexValidator(
    AGENT_NAME_PATTERN,
    message="Use 1 to 64 letters, digits, '_', '.' or '-'.",
    code="invalid_agent",
)


def validate_agent_name(value: str) -> None:
    """1 to 64 of ``[A-Za-z0-9_.-]``, and not ``.`` or ``..``: the name is a segment of the
    node's URL (``/v1/agents/{agent}/infer``), where those two would climb the path."""
    _agent_characters(value)
    if value in (".", ".."):
        raise ValidationError("An agent cannot be named '.' or '..'.", code="invalid_agent")
