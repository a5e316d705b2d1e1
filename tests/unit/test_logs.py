"""Structured logs: one JSON object per line with the service, the correlation id and the
event id of the work in hand."""

from __future__ import annotations

import io
import json
import logging
import sys
from uuid import uuid4

from shared.events import Envelope
from shared.logs import configure_logging, log_context


def test_log_lines_are_json_with_the_service_and_the_ids_of_the_work_in_hand(monkeypatch):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    try:
        configure_logging("plans", "INFO", "json")
        correlation, event = uuid4(), uuid4()
        with log_context(correlation_id=correlation, event_id=event):
            logging.getLogger("plans.handlers").info("plan %s progressed", "p-1")
        logging.getLogger("plans.handlers").warning("outside any work")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
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
