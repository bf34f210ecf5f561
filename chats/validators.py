from __future__ import annotations

from django.core.validators import RegexValidator

AGENT_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"

validate_agent_name = RegexValidator(
    AGENT_NAME_PATTERN,
    message="Use 1 to 64 letters, digits, '_', '.' or '-'.",
    code="invalid_agent",
)
