"""Structured logging: one JSON object per line with ``ts``, ``level``, ``logger``,
``event`` and ``request_id``, plus whatever a call passes in ``extra=``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

from sofiia.lib.request_id import current_request_id


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        return True


class JsonFormatter(_BaseJsonFormatter):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("json_ensure_ascii", False)
        super().__init__(*args, **kwargs)

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        event = log_data.pop("message", record.getMessage())
        ordered = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="microseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": event,
            "request_id": log_data.pop("request_id", getattr(record, "request_id", None)),
        }
        # Keep the well-known keys first so a line reads naturally left to right.
        remaining = dict(log_data)
        log_data.clear()
        log_data.update(ordered)
        log_data.update(remaining)


class DjangoRequestFilter(logging.Filter):
    """Django's ``django.request`` logger writes a line for every 4xx/5xx response, after the
    request's context is gone. The ``sofiia.access`` line already says what was answered, so
    those status lines are dropped; a line that carries an exception (a crash outside the
    API, where nothing else logs it) is kept, with the request's id instead of the request
    object."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info is None:
            return False
        request = record.__dict__.pop("request", None)
        if getattr(record, "request_id", None) is None:
            record.request_id = getattr(request, "request_id", None)
        return True
