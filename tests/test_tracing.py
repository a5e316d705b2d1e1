"""Tracing with OpenTelemetry (shared/tracing.py): one booking made through the API is
followed, in spans of the three services that share its trace or link to it, from the HTTP
request down to the Twilio call and its delivery receipt; no span carries patient data."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import uvicorn
from aiokafka import AIOKafkaProducer
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from devstack.embedded import free_port
from devstack.fake_twilio import FakeTwilio
from services.notifier.bootstrap import bootstrap as notifier_app
from shared import tracing
from shared.db import SHARED_MIGRATIONS, apply_migrations, create_pool, discover_migrations
from shared.kafka import ensure_topics
from shared.outbox import OutboxRelay, enqueue
from shared.topics import BOOKING_EVENTS
from tests.conftest import eventually, service_settings, start_service, stop_service
from tests.helpers import add_patient, create_network, session_booked
from tests.test_outbox import read_all


@pytest.fixture
async def traced(infra, namespace):
    """booking and plans in this process, the notifier served on a port (Twilio's callbacks
    reach it) and a local Twilio, all traced into an in-memory exporter."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider)
    twilio = FakeTwilio()
    await twilio.start()
    port = free_port()
    app = notifier_app(service_settings(
        "notifier", infra, namespace, twilio_account_sid=twilio.account_sid,
        twilio_auth_token=twilio.auth_token, twilio_api_base_url=twilio.url,
        twilio_from_number="+15005550006", public_base_url=f"http://127.0.0.1:{port}",
        dispatch_poll_seconds=0.2))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           lifespan="on"))
    serving = asyncio.create_task(server.serve())
    started = []
    try:
        for name in ("booking", "plans"):
            started.append(await start_service(name, service_settings(name, infra, namespace)))
        await eventually(lambda: _value(server.started), timeout=60)
        yield exporter, twilio, *started, app.state.runtime
    finally:
        for svc in started:
            await stop_service(svc)
        server.should_exit = True
        await serving
        await twilio.stop()
        tracing.disable()
        provider.shutdown()


async def _value(value):
    return value


def _named(spans: list[ReadableSpan], name: str, trace_id: int) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name and s.context.trace_id == trace_id]


async def test_one_booking_is_one_trace_from_the_request_to_the_twilio_call_and_its_receipt(traced):
    exporter, twilio, booking, _plans, notifier = traced
    net = await create_network(booking.http)
    patient = await add_patient(booking.http, net, given_name="Zelphine",
                                family_name="Quarrington", phone="604-555-0188")
    start = (datetime.now(ZoneInfo("America/Vancouver")) + timedelta(days=2)).replace(
        hour=10, minute=0, second=0, microsecond=0)
    r = await booking.http.post("/bookings", headers=net.headers, json={
        "patient_id": patient["id"], "site_id": net.site["id"],
        "session_type": "iv_infusion", "starts_at": start.isoformat()})
    assert r.status_code == 201, r.text
    # confirmation and prep are due at once: two Twilio calls
    sent = await eventually(lambda: _value(len(twilio.sent()) >= 2 and twilio.sent()), timeout=60)
    sids = {s["sid"] for s in sent}
    for sid in sids:
        assert await twilio.callback(sid, "delivered") == 204

    request = next(s for s in exporter.get_finished_spans()
                   if s.kind is SpanKind.SERVER and s.name == "POST /bookings")
    trace_id = request.context.trace_id

    async def whole_trace():
        spans = exporter.get_finished_spans()
        ready = (_named(spans, "plans SessionBooked", trace_id)
                 and len(_named(spans, "notifier send text", trace_id)) >= 2
                 and len([s for s in spans if s.name == "notifier delivery receipt"]) >= 2)
        return ready and spans

    spans = await eventually(whole_trace, timeout=30)
    by_id = {s.context.span_id: s for s in spans}

    def parent(span: ReadableSpan) -> ReadableSpan:
        return by_id[span.parent.span_id]

    # booking: the request wrote the booking and its outbox row (asyncpg's span, in the
    # request), and the relay published the row in the request's trace
    assert any(s.name.startswith("INSERT") or "bookings" in s.attributes.get("db.statement", "")
               for s in spans if s.parent and s.parent.span_id == request.context.span_id)
    published = _named(spans, f"{booking.runtime.settings.topic_prefix}booking.events send",
                       trace_id)
    assert published and all(s.kind is SpanKind.PRODUCER for s in published)
    assert {parent(s).context.span_id for s in published} == {request.context.span_id}

    # plans and the notifier: a span per event, a child of the publishing span, linked to
    # the span of the batch it came in
    prefix = booking.runtime.settings.topic_prefix
    read_by = {"plans": ["booking.events"], "notifier": ["booking.events", "plans.events"]}
    for consumer in ("plans", "notifier"):
        (handled,) = _named(spans, f"{consumer} SessionBooked", trace_id)
        assert handled.kind is SpanKind.CONSUMER
        assert parent(handled) in published
        assert handled.attributes["messaging.consumer.group.name"] == consumer
        assert handled.attributes["messaging.destination.name"] == f"{prefix}booking.events"
        # FastStream names a batch's span after one topic: the notifier's batch may hold
        # records of both topics it reads, so its batch span may bear either name
        (batch,) = [by_id[link.context.span_id] for link in handled.links]
        assert batch.kind is SpanKind.CONSUMER
        assert batch.name in {f"{prefix}{topic} process" for topic in read_by[consumer]}
        assert handled.attributes["messaging.message.id"] == str(
            await booking.runtime.db.fetchval(
                "SELECT event_id FROM outbox WHERE event_type = 'SessionBooked'"))

    # the notifier: each Twilio call is a span of the text's trace (the event that scheduled
    # it), with the SID it got; the SDK's HTTP request is inside it
    (scheduled,) = _named(spans, "notifier SessionBooked", trace_id)
    calls = _named(spans, "notifier send text", trace_id)
    assert {parent(c).context.span_id for c in calls} == {scheduled.context.span_id}
    assert {c.attributes["kcb.provider_sid"] for c in calls} == sids
    assert {c.attributes["kcb.text_kind"] for c in calls} == {"confirmation", "prep"}
    for call in calls:
        (http,) = [s for s in spans if s.parent and s.parent.span_id == call.context.span_id
                   and s.kind is SpanKind.CLIENT]
        assert http.attributes["http.status_code"] == 201  # Twilio took it

    # the status callbacks: a span each, linked to the text's trace
    receipts = [s for s in spans if s.name == "notifier delivery receipt"]
    assert {r.attributes["kcb.provider_sid"] for r in receipts} == sids
    assert {link.context.trace_id for r in receipts for link in r.links} == {trace_id}
    assert {link.context.span_id for r in receipts for link in r.links} == {scheduled.context.span_id}
    assert all(parent(r).kind is SpanKind.SERVER for r in receipts)  # in the callback's request

    # the SmsSent events the sends wrote carry the text's trace in their outbox rows
    rows = await notifier.db.fetch("SELECT trace_context FROM outbox WHERE event_type = 'SmsSent'")
    assert len(rows) == 2
    assert {r["trace_context"].split("-")[1] for r in rows} == {format(trace_id, "032x")}

    # no patient data anywhere in the spans: names, numbers, bodies
    bodies = {s["Body"] for s in sent}
    assert {s["To"] for s in sent} == {"+16045550188"} and all(bodies)  # what the scan looks for
    secret = {"Zelphine", "Quarrington", "+16045550188", "6045550188", "555-0188", *bodies}
    for span in spans:
        for value in _words(span):
            assert not any(s in value for s in secret), (span.name, value)


def _words(span: ReadableSpan) -> list[str]:
    """Everything a span says in text: its name, status, attributes, events and links."""
    out = [span.name, span.status.description or ""]
    attributes = [span.attributes, *(e.attributes for e in span.events),
                  *(link.attributes for link in span.links)]
    out += [e.name for e in span.events]
    for attrs in attributes:
        for key, value in (attrs or {}).items():
            out += [key, *(map(str, value) if isinstance(value, tuple) else [str(value)])]
    return out


async def test_a_row_written_in_a_trace_keeps_it_through_a_relay_that_does_not_trace(
        infra, namespace):
    pool = await create_pool(infra.database_url, f"{namespace}_t")
    await apply_migrations(pool, discover_migrations(SHARED_MIGRATIONS))
    prefix = f"{namespace}."
    await ensure_topics(infra.bootstrap_servers, 1, [BOOKING_EVENTS], prefix=prefix)
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers)
    await producer.start()
    provider = TracerProvider()
    tracing.enable(provider)
    try:
        with tracing.tracer().start_as_current_span("request") as span:
            ctx = span.get_span_context()
            async with pool.acquire() as conn:
                await enqueue(conn, [session_booked()])
        tracing.disable()  # the relay of an instance that does not trace
        async with pool.acquire() as conn:
            await enqueue(conn, [session_booked()])  # written while off: no context
        stored = await pool.fetch("SELECT trace_context FROM outbox ORDER BY id")
        assert stored[0]["trace_context"].startswith(
            f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-")
        assert stored[1]["trace_context"] is None
        relay = OutboxRelay(pool, producer, schema=f"{namespace}_t", topic_prefix=prefix)
        assert await relay.publish_batch() == 2
        got = await read_all(infra.bootstrap_servers, prefix + BOOKING_EVENTS, 2)
        assert [dict(m.headers).get("traceparent") for m in got] == [
            stored[0]["trace_context"].encode(), None]
    finally:
        tracing.disable()
        await producer.stop()
        await pool.close()
