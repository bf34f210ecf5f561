from __future__ import annotations

from sofiia.lib.errors import ApplicationError


class OperatorExists(ApplicationError):
    status = 409
    code = "operator_exists"
