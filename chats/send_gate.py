"""A send's place in the send gate (``sofiia.lib.gate``): where it is taken, and where it is
given up.

A send takes its place once, in front of everything else of its own (:func:`send_gated`
wraps the two send views in the URLconfs), and gives it up once, while its node thinks
(:func:`send_gate_given_up`, around the node call in ``chats.services.message_send``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

from sofiia.lib.db import db_connections_release
from sofiia.lib.gate import send_gate

View = TypeVar("View", bound=Callable[..., HttpResponseBase])


def send_gated(view: View) -> View:
    """Run the whole send — the idempotency middleware, authentication, the body, the pipeline
    — inside the send gate.

    A burst of sends then costs one parked greenlet per send beyond ``SOFIIA_SENDS_ACTIVE_MAX``
    until its turn: the waiters have not yet queried the database for their operator, so a
    health probe or a page load never queues behind them for a pooled connection or a turn of
    the worker's CPU.
    """

    @wraps(view)
    def gated(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        # Waiting at the gate must not hold a pooled connection (a middleware may have taken
        # one): the sends inside the gate need connections to finish, and would wait for the
        # waiters'.
        with send_gate.held(settings.SOFIIA_SENDS_ACTIVE_MAX, before_waiting=db_connections_release):
            return view(request, *args, **kwargs)

    return gated  # type: ignore[return-value]


@contextmanager
def send_gate_given_up() -> Iterator[None]:
    """Let another send run its steps while this one waits on its node."""
    with send_gate.released():
        yield
