"""Application errors of the chats domain, each with its stable contract code."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sofiia.lib.errors import ApplicationError

if TYPE_CHECKING:
    from chats.infer import NodeError
    from chats.models import Message


class ChatNotFound(ApplicationError):
    status = 404
    code = "not_found"


class UnknownNode(ApplicationError):
    status = 400
    code = "unknown_node"


class IdempotencyKeyReused(ApplicationError):
    status = 422
    code = "idempotency_key_reused"


class IdempotencyKeyInFlight(ApplicationError):
    status = 409
    code = "idempotency_key_in_flight"


class MessageDeliveryFailed(ApplicationError):
    """The node failed; the operator message is kept, marked ``failed``."""

    def __init__(self, message: Message, error: NodeError) -> None:
        timed_out = error.code == "node_timeout"
        super().__init__(
            f"Node {error.node} did not deliver the message: {error.detail}.",
            code=error.code,
            status=504 if timed_out else 502,
        )
        self.message = message
        self.error = error


class OperatorExists(ApplicationError):
    status = 409
    code = "operator_exists"
