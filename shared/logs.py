"""Logging set-up shared by the services: one JSON object per line (or plain text for people),
carrying the service, the correlation id and the event id of the work in hand, and the trace
and span ids of the OpenTelemetry span current when a record is logged (none while tracing is
off). No patient data at INFO: messages name ids, counts and error codes, never names,
numbers or bodies."""

from __future__ import annotations

import contextvars
import logging
import sys
from typing import Any

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("log_context")


class log_context:
    """Add `fields` (e.g. correlation_id, event_id) to every record logged inside the block.

    Entered once per event a consumer handles and per request, so it only keeps the values:
    they become text when a record is logged, not on every entry."""

    __slots__ = ("_fields", "_token")

    def __init__(self, **fields: Any) -> None:
        self._fields = fields

    def __enter__(self) -> None:
        outer = _context.get(None)
        fields = {k: v for k, v in self._fields.items() if v is not None}
        self._token = _context.set({**outer, **fields} if outer else fields)

    def __exit__(self, *exc: object) -> None:
        _context.reset(self._token)


def context_field(name: str) -> Any | None:
    """The value `log_context` set for `name` in the work in hand (as given), or None."""
    return _context.get({}).get(name)


class _ContextFilter(logging.Filter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        for key, value in _context.get({}).items():
            setattr(record, key, str(value))
        span = trace.get_current_span().get_span_context()
        if span.is_valid:  # links the line to its trace (Jaeger), as W3C traceparent spells them
            record.trace_id = format(span.trace_id, "032x")
            record.span_id = format(span.span_id, "016x")
        return True


def configure_logging(service: str, level: str = "INFO", fmt: str = "json") -> None:
    """Route every log record to stderr, as JSON lines (`fmt="json"`) or text."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ContextFilter(service))
    if fmt == "json":
        handler.setFormatter(JsonFormatter(
            "{asctime}{levelname}{service}{name}{message}", style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            timestamp=False, datefmt="%Y-%m-%dT%H:%M:%S%z"))
    else:
        handler.setFormatter(logging.Formatter(
            f"%(asctime)s {service:<8} %(levelname)-5s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # third-party request logs at INFO could carry numbers or bodies: warnings only
    for noisy in ("aiokafka", "uvicorn.access", "httpx", "httpcore", "twilio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
