"""Tracing's switch and the trace context carried in rows (shared/tracing.py), without a
database or broker: off unless OTEL_SDK_DISABLED=false, and then nothing is instrumented
and no row carries a context."""

from __future__ import annotations

import aiokafka
import asyncpg
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared import tracing

STORED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.mark.parametrize("value, on", [(None, False), ("true", False), ("TRUE", False),
                                       ("1", False), ("", False), ("false", True),
                                       (" False ", True)])
def test_tracing_is_on_only_when_otel_sdk_disabled_says_false(monkeypatch, value, on):
    if value is None:
        monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    else:
        monkeypatch.setenv("OTEL_SDK_DISABLED", value)
    assert tracing.wanted() is on


def test_off_by_default_nothing_is_instrumented_and_no_row_carries_a_context(monkeypatch):
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    assert tracing.configure_from_env("booking") is False
    assert not tracing.enabled()
    assert not hasattr(aiokafka.AIOKafkaProducer.send, "__wrapped__")
    assert not hasattr(asyncpg.Connection.execute, "__wrapped__")
    assert tracing.broker_middlewares() == ()
    with TracerProvider().get_tracer("t").start_as_current_span("somebody else's"):
        assert tracing.traceparent() is None
        assert tracing.context_of(None) is None


def test_on_a_row_carries_the_current_span_and_the_libraries_are_instrumented_until_off():
    provider = TracerProvider()
    tracing.enable(provider)
    try:
        assert hasattr(aiokafka.AIOKafkaProducer.send, "__wrapped__")
        assert not hasattr(aiokafka.AIOKafkaConsumer.getmany, "__wrapped__")  # FastStream's
        assert len(tracing.broker_middlewares()) == 1
        with tracing.tracer().start_as_current_span("request"):
            header: dict[str, str] = {}
            TraceContextTextMapPropagator().inject(header)  # as the W3C header spells it
            assert tracing.traceparent() == header["traceparent"]
            assert tracing.context_of(None) == header["traceparent"]
    finally:
        tracing.disable()
    assert not hasattr(aiokafka.AIOKafkaProducer.send, "__wrapped__")


def test_a_stored_traceparent_names_its_span_and_a_broken_one_names_none():
    (link,) = tracing.link(STORED)
    assert format(link.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert format(link.context.span_id, "016x") == "b7ad6b7169203331"
    for broken in (None, "", "00-xyz-b7ad6b7169203331-01", "00-" + "0" * 32 + "-" + "0" * 16 + "-01"):
        assert tracing.link(broken) == []
        assert tracing.parent(broken) is None


def test_a_statement_made_by_no_traced_work_starts_no_trace_but_one_in_a_request_is_kept():
    tracer = TracerProvider(sampler=tracing.CausedOnly(ALWAYS_ON)).get_tracer("t")
    with tracer.start_as_current_span("SELECT", kind=SpanKind.CLIENT) as polling:
        assert not polling.is_recording()  # the relay's or the dispatcher's polling
    with tracer.start_as_current_span("POST /bookings", kind=SpanKind.SERVER) as request:
        assert request.is_recording()
        with tracer.start_as_current_span("INSERT", kind=SpanKind.CLIENT) as insert:
            assert insert.is_recording()
