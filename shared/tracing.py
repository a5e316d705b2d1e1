"""Tracing with OpenTelemetry: one trace follows each cause across the services.

Off unless `OTEL_SDK_DISABLED=false`: then no library is instrumented, and every hook below
is a test of one module flag (`enabled()`).
On, the standard `OTEL_*` variables configure it (service name, exporter, OTLP endpoint,
sampler, propagators; a statement or HTTP call made by no traced work starts no trace:
`CausedOnly`), and the libraries' own instrumentations make most spans: FastAPI
(each request), asyncpg (each statement, without its parameters), aiokafka (the outbox
relay's sends, which inject the W3C `traceparent` header), FastStream's middleware (each
batch a consumer processes) and aiohttp (the Twilio SDK's requests).

By hand, only the propagation no library gives:
- the outbox row carries the trace context of the work that wrote it (`outbox.trace_context`):
  the relay publishes the row inside that context, so its send span and `traceparent`
  header continue the request's trace;
- a consumer makes a span per event, a child of its producer's (from the header), linked to
  the batch's span; events and texts written while a batch is handled carry the context of
  the event that caused them (`context_of`);
- the dispatcher makes a span per provider call (its SID as an attribute) in the text's
  trace (`texts.trace_context`), and a delivery receipt's span is linked to it.

Spans never carry patient data: names, numbers and bodies are bound parameters or request
bodies, which no instrumentation here records; attributes set by hand are ids and counts.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from uuid import UUID

import aiokafka
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, Span, SpanKind, Tracer, TracerProvider, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes

_W3C = TraceContextTextMapPropagator()
_state: dict[str, Any] = {"provider": None, "tracer": None, "instrumentors": []}
_enabled = False
_by_event: contextvars.ContextVar[Mapping[UUID, Span]] = contextvars.ContextVar(
    "spans_by_event")


def enabled() -> bool:
    """Whether this process traces (the hooks' only cost when it does not)."""
    return _enabled


def wanted() -> bool:
    """Whether the environment turns tracing on: `OTEL_SDK_DISABLED=false` (unset or true:
    off; the SDK's own default is on, this project's is off)."""
    return os.environ.get("OTEL_SDK_DISABLED", "true").strip().lower() == "false"


def configure_from_env(service_name: str) -> bool:
    """Turn tracing on in this process if the environment asks for it (`wanted`), with an
    exporter from `OTEL_TRACES_EXPORTER` (`otlp`, the default, over OTLP/HTTP to
    `OTEL_EXPORTER_OTLP_ENDPOINT`; `console`; `none`), the service named by
    `OTEL_SERVICE_NAME` or `service_name`. Call it before the app is built. Returns whether on."""
    if not wanted() or _enabled:
        return _enabled
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME") or service_name})
    configured = SdkProvider().sampler  # OTEL_TRACES_SAMPLER(_ARG), as the SDK reads them
    provider = SdkProvider(resource=resource, sampler=CausedOnly(configured))
    for name in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(","):
        name = name.strip().lower()
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        elif name == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    enable(provider)
    return True


class CausedOnly(Sampler):
    """The configured sampler, except that a database statement or HTTP call made by no
    traced work (a worker's polling: the relay, the dispatcher's claims, the samplers of
    figures) starts no trace of its own: a client span without a parent is dropped."""

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler

    def should_sample(self, parent_context: Context | None, trace_id: int, name: str,
                      kind: SpanKind | None = None, attributes: Attributes = None,
                      links: Sequence[Link] | None = None,
                      trace_state: TraceState | None = None) -> SamplingResult:
        if kind is SpanKind.CLIENT and not trace.get_current_span(parent_context) \
                .get_span_context().is_valid:
            return SamplingResult(Decision.DROP)
        return self.sampler.should_sample(parent_context, trace_id, name, kind, attributes,
                                          links, trace_state)

    def get_description(self) -> str:
        return f"CausedOnly{{{self.sampler.get_description()}}}"


def enable(provider: TracerProvider) -> None:
    """Trace with `provider`: instrument asyncpg, aiokafka's producer and aiohttp's client
    (apps and brokers built from now on are instrumented too). Tests pass an SDK provider
    with an in-memory exporter, and call `disable()` after."""
    global _enabled
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.utils import unwrap

    disable()
    _state["provider"] = provider
    _state["tracer"] = provider.get_tracer("shared.tracing")
    instrumentors: list[Any] = [
        AsyncPGInstrumentor(),  # type: ignore[no-untyped-call]  # its __init__ has no annotations
        AIOKafkaInstrumentor(), AioHttpClientInstrumentor()]
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=provider)
    # consumers are FastStream's (its middleware and the per-event spans): aiokafka's own
    # receive spans, made for every record polled, would only repeat them
    unwrap(aiokafka.AIOKafkaConsumer, "getone")
    unwrap(aiokafka.AIOKafkaConsumer, "getmany")
    _state["instrumentors"] = instrumentors
    _enabled = True


def disable() -> None:
    """Stop tracing: the libraries uninstrumented (apps already built keep their middleware)."""
    global _enabled
    _enabled = False
    for instrumentor in _state["instrumentors"]:
        with contextlib.suppress(Exception):
            instrumentor.uninstrument()
    _state.update(provider=None, tracer=None, instrumentors=[])


def provider() -> TracerProvider | None:
    """The provider in use (None while off)."""
    found: TracerProvider | None = _state["provider"]
    return found


def tracer() -> Tracer:
    """The tracer of the spans made by hand (only while `enabled()`)."""
    found: Tracer = _state["tracer"]
    return found


def instrument_app(app: Any) -> None:
    """Trace each request of a FastAPI app (a server span per request), if tracing is on."""
    if _enabled:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        FastAPIInstrumentor.instrument_app(app, tracer_provider=provider(),
                                           exclude_spans=["receive", "send"])


def broker_middlewares() -> tuple[Any, ...]:
    """FastStream's OpenTelemetry middleware for a service's broker, if tracing is on."""
    if not _enabled:
        return ()
    from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
    return (KafkaTelemetryMiddleware(tracer_provider=provider()),)


# -- the trace context carried in rows (outbox, texts) ----------------------------------

def traceparent(span: Span | None = None) -> str | None:
    """The W3C `traceparent` of `span` (default: the current one) to store with a row, or
    None (tracing off, or no span)."""
    if not _enabled:
        return None
    ctx = (span or trace.get_current_span()).get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def context_of(event_id: UUID | None) -> str | None:
    """The `traceparent` a row written because of event `event_id` carries: that event's span
    while its consumer handles a batch, else the current span's (None while off)."""
    if not _enabled:
        return None
    span = _by_event.get({}).get(event_id) if event_id is not None else None
    return traceparent(span)


def parent(value: str | None) -> otel_context.Context | None:
    """The context a stored `traceparent` names (None if none or invalid)."""
    if not value:
        return None
    ctx = _W3C.extract({"traceparent": value})
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


def link(value: str | None) -> list[Link]:
    """A link to the span a stored `traceparent` names (none if none or invalid)."""
    ctx = parent(value)
    return [Link(trace.get_current_span(ctx).get_span_context())] if ctx is not None else []


@contextlib.contextmanager
def attached(value: str | None) -> Iterator[None]:
    """Run the block in the context a stored `traceparent` names (as is if none)."""
    ctx = parent(value) if _enabled else None
    if ctx is None:
        yield
        return
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


# -- consumers: a span per event ---------------------------------------------------------

def event_spans(consumer: str, records_and_events: list[tuple[Any, Any]]) -> dict[UUID, Span]:
    """Start a span per event of a batch about to be handled: a child of its producer's span
    (the record's `traceparent` header), linked to the batch's span (the current one)."""
    batch = trace.get_current_span().get_span_context()
    links = [Link(batch)] if batch.is_valid else []
    spans = {}
    for record, env in records_and_events:
        if env.event_id in spans:  # a duplicate inside the batch is handled once
            continue
        headers = {k: v.decode(errors="replace") for k, v in record.headers or ()
                   if k in ("traceparent", "tracestate")}
        spans[env.event_id] = tracer().start_span(
            f"{consumer} {env.event_type}", context=_W3C.extract(headers), kind=SpanKind.CONSUMER,
            links=links, attributes={
                "messaging.system": "kafka", "messaging.consumer.group.name": consumer,
                "messaging.destination.name": record.topic,
                "messaging.kafka.destination.partition": record.partition,
                "messaging.kafka.message.offset": record.offset,
                "messaging.message.id": str(env.event_id), "kcb.event_type": env.event_type})
    return spans


@contextlib.contextmanager
def handling(spans: Mapping[UUID, Span]) -> Iterator[None]:
    """While a batch's events are handled: rows they cause carry their span's context
    (`context_of`); the spans end with the block (with the error, if one is raised)."""
    token = _by_event.set(spans)
    try:
        yield
    except BaseException as exc:
        for span in spans.values():
            span.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        _by_event.reset(token)
        for span in spans.values():
            span.end()


_NOTHING = contextlib.nullcontext()


def current(span: Span | None) -> contextlib.AbstractContextManager[Any]:
    """Make `span` current in a `with` block (nothing, at no cost, if None)."""
    return _NOTHING if span is None else trace.use_span(span, end_on_exit=False)
