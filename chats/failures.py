"""Why a message was not delivered, in the operator's words: one sentence per ``failure``
code a message keeps (``nodes.errors``, plus the console's own ``database_unavailable``)."""

from __future__ import annotations

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

FAILURE_REASONS: dict[str, Promise] = {
    "node_refused": _(
        "The node could not be reached: it refused or dropped the connection. "
        "The message is kept: press Retry when the node is back."
    ),
    "node_timeout": _(
        "The node did not answer in time. It may be overloaded or the answer too long: press Retry to ask again."
    ),
    "node_http_error": _(
        "The node is up but answered with an error. Press Retry; if it fails again, tell the node's administrator."
    ),
    "node_redirect": _(
        "The node answered with a redirect, which the console never follows: "
        "its address in the console's configuration may be out of date. Tell an administrator."
    ),
    "node_too_large": _(
        "The node's answer was larger than the console accepts. Press Retry, or ask for a shorter answer."
    ),
    "node_bad_response": _(
        "The node's answer could not be read: it was not in the expected format. "
        "Press Retry; if it happens again, tell the node's administrator."
    ),
    "node_busy": _("The node was busy with other messages, so this one was not sent yet. Press Retry in a moment."),
    "node_unknown": _(
        "This chat's node is no longer in the console's configuration, so nothing was sent. Tell an administrator."
    ),
    "node_bad_agent": _(
        "This chat's agent name cannot be sent to a node, so nothing was sent. Start a chat with another agent."
    ),
    "database_unavailable": _(
        "The console's database was unavailable while the answer arrived. The message is kept: press Retry in a moment."
    ),
}
GENERIC_FAILURE_REASON = _("The node did not deliver the message. It is kept: press Retry when the node is back.")


def failure_reason(code: str) -> str:
    """The translated sentence for a ``failure`` code (a general one for an unknown or empty
    code: a message failed before the codes were stored says nothing more)."""
    return str(FAILURE_REASONS.get(code, GENERIC_FAILURE_REASON))
