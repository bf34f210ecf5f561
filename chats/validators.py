from __future__ import annotations

from django.core.validators import RegexValidator

# The name is a segment of the node's URL (``/v1/agents/{agent}/infer``): ``.`` and ``..``
# would climb the path, so they are refused by the pattern itself (which the OpenAPI
# description then states in full).
AGENT_NAME_PATTERN = r"^(?!\.{1,2}$)[A-Za-z0-9_.-]{1,64}$"

validate_agent_name = RegexValidator(
    AGENT_NAME_PATTERN,
    message="Use 1 to 64 letters, digits, '_', '.' or '-'; not '.' or '..' alone.",
    code="invalid_agent",
)
"""1 to 64 of ``[A-Za-z0-9_.-]``, and not ``.`` or ``..``."""
