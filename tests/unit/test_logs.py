"""Structured logs: one JSON object per line with the service, the correlation id and the
event id of the work in hand, and the trace and span ids of the current span."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
from collections.abc import Iterator
from uuid import UUID, uuid4

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator

from shared.events import Envelope
from shared.logs import configure_logging, log_context


@contextlib.contextmanager
def json_logs(monkeypatch, service: str) -> Iterator[list[dict]]:
    """Logging configured for `service` as JSON lines; the lines, parsed, once the block ends."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    lines: list[dict] = []
    try:
        configure_logging(service, "INFO", "json")
        yield lines
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    lines += [json.loads(line) for line in stream.getvalue().splitlines()]


def test_log_lines_are_json_with_the_service_and_the_ids_of_the_work_in_hand(monkeypatch):
    with json_logs(monkeypatch, "plans") as lines:
        correlation, event = uuid4(), uuid4()
        with log_context(correlation_id=correlation, event_id=event):
            logging.getLogger("plans.handlers").info("plan %s progressed", "p-1")
        logging.getLogger("plans.handlers").warning("outside any work")
    first, second = lines
    assert first["message"] == "plan p-1 progressed" and first["level"] == "INFO"
    assert first["service"] == "plans" and first["logger"] == "plans.handlers"
    assert first["correlation_id"] == str(correlation) and first["event_id"] == str(event)
    assert "correlation_id" not in second


def test_events_made_while_handling_a_request_carry_its_correlation_id():
    from shared.events.booking import ApiKeyRevoked

    correlation = uuid4()
    with log_context(correlation_id=correlation):
        env = Envelope.new(ApiKeyRevoked(key_id=uuid4()), producer="booking", clinic_id=uuid4(),
                           patient_id=None)
    assert env.correlation_id == correlation
    alone = Envelope.new(ApiKeyRevoked(key_id=uuid4()), producer="booking", clinic_id=uuid4(),
                         patient_id=None)
    assert alone.correlation_id == alone.event_id


def test_a_requests_correlation_id_given_as_text_is_carried_and_one_that_is_no_uuid_is_not():
    from shared.events.booking import ApiKeyRevoked

    with log_context(correlation_id="6f1c2a43-2d0a-4a39-9a4f-2f3f5b0d8e11"):  # the header's text
        env = Envelope.new(ApiKeyRevoked(key_id=uuid4()), producer="booking", clinic_id=uuid4(),
                           patient_id=None)
    assert env.correlation_id == UUID("6f1c2a43-2d0a-4a39-9a4f-2f3f5b0d8e11")
    with log_context(correlation_id="not-a-uuid"):
        odd = Envelope.new(ApiKeyRevoked(key_id=uuid4()), producer="booking", clinic_id=uuid4(),
                           patient_id=None)
    assert odd.correlation_id == odd.event_id


class _FixedIds(IdGenerator):
    """The trace and span ids of the W3C Trace Context specification's example."""

    def generate_trace_id(self) -> int:
        return 0x4BF92F3577B34DA6A3CE929D0E0E4736

    def generate_span_id(self) -> int:
        return 0x00F067AA0BA902B7


def test_json_log_lines_carry_the_trace_and_span_ids_of_the_current_span_and_none_outside(monkeypatch):
    tracer = TracerProvider(id_generator=_FixedIds()).get_tracer("test")
    with json_logs(monkeypatch, "booking") as lines:
        with tracer.start_as_current_span("POST /bookings"):
            logging.getLogger("booking.api").info("booking made")
        logging.getLogger("booking.api").info("no span here")
    inside, outside = lines
    assert (inside["trace_id"], inside["span_id"]) == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
    assert "trace_id" not in outside and "span_id" not in outside
