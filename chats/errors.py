"""Application errors of the chats domain, each with its stable contract code."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sofiia.lib.errors import ApplicationError

if TYPE_CHECKING:
    from chats.models import Message
    from nodes.infer import NodeError


class ChatNotFound(ApplicationError):
    status = 404
    code = "not_found"


class UnknownNode(ApplicationError):
    status = 400
    code = "unknown_node"


class InvalidInput(ApplicationError):
    status = 400
    code = "invalid_input"


class ChatArchived(ApplicationError):
    status = 409
    code = "chat_archived"


class IdempotencyKeyRequired(ApplicationError):
    code = "idempotency_key_required"


class IdempotencyKeyInvalid(ApplicationError):
    code = "idempotency_key_invalid"


class IdempotencyKeyReused(ApplicationError):
    status = 422
    code = "idempotency_key_reused"


class IdempotencyKeyInFlight(ApplicationError):
    status = 409
    code = "idempotency_key_in_flight"


class RateLimited(ApplicationError):
    status = 429
    code = "rate_limited"


class RateLimitUnavailable(ApplicationError):
    status = 503
    code = "rate_limit_unavailable"


NODE_BUSY_RETRY_AFTER_SECONDS = 2
_DELIVERY_STATUS = {"node_timeout": 504, "node_busy": 503}


class MessageDeliveryFailed(ApplicationError):
    """The node failed, or was too busy to be called; the operator message is kept, marked
    ``failed``, and a retry with the same key delivers it."""

    def __init__(self, message: Message, error: NodeError) -> None:
        busy = error.code == "node_busy"
        super().__init__(
            f"Node {error.node} did not deliver the message: {error.detail}.",
            code=error.code,
            status=_DELIVERY_STATUS.get(error.code, 502),
            headers={"Retry-After": str(NODE_BUSY_RETRY_AFTER_SECONDS)} if busy else None,
        )
        self.message = message
        self.error = error
