"""Delivery guarantees of the shared consumer, on the real broker and PostgreSQL:
idempotence, offsets committed only after the handler's transaction, dead letters."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord
from faststream.kafka import KafkaBroker

from shared.consumer import EventConsumer
from shared.db import SHARED_MIGRATIONS, apply_migrations, create_pool, discover_migrations
from shared.events.booking import SessionBooked
from shared.kafka import ensure_topics
from shared.outbox import OutboxRelay
from shared.topics import BOOKING_EVENTS, dlq
from tests.conftest import eventually
from tests.helpers import session_booked


class Harness:
    """An EventConsumer on a private schema and topic namespace, recording its effects."""

    def __init__(self, infra, namespace):
        self.infra = infra
        self.prefix = f"{namespace}."
        self.schema = f"{namespace}_c"
        self.topic = self.prefix + BOOKING_EVENTS
        self.calls: list = []
        self.fail_with: list[Exception] = []
        self.gate: asyncio.Event | None = None

    async def handle(self, conn, env):
        self.calls.append(env.event_id)
        if self.gate is not None:
            await conn.execute("INSERT INTO effects (event_id) VALUES ($1)", env.event_id)
            await self.gate.wait()
            return
        if self.fail_with:
            raise self.fail_with.pop(0)
        if env.payload.session_type == "explode":
            raise ValueError("handler bug")
        await conn.execute("INSERT INTO effects (event_id) VALUES ($1)", env.event_id)

    async def __aenter__(self):
        self.pool = await create_pool(self.infra.database_url, self.schema)
        await apply_migrations(self.pool, discover_migrations(SHARED_MIGRATIONS))
        await self.pool.execute("CREATE TABLE effects (event_id uuid NOT NULL)")
        await ensure_topics(self.infra.bootstrap_servers, 3, prefix=self.prefix)
        self.broker = KafkaBroker(self.infra.bootstrap_servers)
        self.consumer = EventConsumer("test", lambda: self.pool, {SessionBooked: self.handle},
                                      retry_delay=0.1, topic_prefix=self.prefix)
        self.consumer.subscribe(self.broker, BOOKING_EVENTS, session_timeout_ms=2000,
                                heartbeat_interval_ms=300)
        await self.broker.start()
        self.producer = AIOKafkaProducer(bootstrap_servers=self.infra.bootstrap_servers)
        await self.producer.start()
        return self

    async def __aexit__(self, *exc):
        if self.gate is not None:
            self.gate.set()
        await self.broker.stop()
        await self.producer.stop()
        await self.pool.close()

    async def publish(self, value: bytes, key: bytes = b"k"):
        return await self.producer.send_and_wait(self.topic, value=value, key=key)

    async def effects(self) -> list:
        return [r["event_id"] for r in await self.pool.fetch("SELECT event_id FROM effects")]


@pytest.fixture
async def harness(infra, namespace):
    async with Harness(infra, namespace) as h:
        yield h


async def test_a_redelivered_event_is_a_no_op(harness):
    env = session_booked()
    for _ in range(3):
        await harness.publish(env.to_bytes(), env.key)
    await eventually(lambda: _n(harness.consumer.stats.duplicates, 2))
    assert await harness.effects() == [env.event_id]
    assert harness.calls == [env.event_id]


def _record(harness, env, offset):
    return ConsumerRecord(harness.topic, 0, offset, 0, 0, env.key, env.to_bytes(), None,
                          len(env.key), len(env.to_bytes()), ())


async def test_a_batch_runs_each_new_event_once_and_counts_the_others_as_duplicates(harness):
    seen, new, other = session_booked(), session_booked(), session_booked()
    first = await harness.consumer.process([_record(harness, seen, 0)])
    assert (first.handled, first.duplicates) == (1, 0)
    batch = [_record(harness, e, i) for i, e in enumerate([seen, new, new, other], start=1)]
    result = await harness.consumer.process(batch)
    assert (result.handled, result.duplicates) == (2, 2)
    assert result.by_type == Counter({("SessionBooked", "handled"): 2,
                                      ("SessionBooked", "duplicates"): 2})
    again = await harness.consumer.process([_record(harness, other, 5)])
    assert (again.handled, again.duplicates) == (0, 1)
    assert harness.calls == [seen.event_id, new.event_id, other.event_id]
    assert sorted(await harness.effects()) == sorted([seen.event_id, new.event_id, other.event_id])


async def _n(value, expected):
    return value >= expected


async def test_a_malformed_message_lands_in_the_dlq_and_the_next_good_one_is_processed(harness):
    good = session_booked()
    await harness.publish(b"\x00not json at all", b"p1")
    await harness.publish(json.dumps({"event_type": "SessionBooked", "schema_version": 1}).encode(), b"p1")
    await harness.publish(good.to_bytes(), good.key)
    await eventually(harness.effects)
    assert await harness.effects() == [good.event_id]

    rows = await harness.pool.fetch('SELECT topic, "offset", error, value FROM dead_letters ORDER BY "offset"')
    assert next(r["value"] for r in rows) == b"\x00not json at all"
    assert all(r["topic"] == harness.topic for r in rows) and len(rows) == 2
    assert rows[0]["error"].startswith("invalid event")
    assert "event_id: missing" in rows[1]["error"] or "missing" in rows[1]["error"]

    relay = OutboxRelay(harness.pool, harness.producer, schema=harness.schema,
                        topic_prefix=harness.prefix)
    assert await relay.publish_batch() == 2
    dlq_consumer = AIOKafkaConsumer(harness.prefix + dlq(BOOKING_EVENTS),
                                    bootstrap_servers=harness.infra.bootstrap_servers,
                                    auto_offset_reset="earliest", group_id=f"{harness.prefix}reader")
    await dlq_consumer.start()
    try:
        batch = await dlq_consumer.getmany(timeout_ms=10000, max_records=10)
        messages = [m for msgs in batch.values() for m in msgs]
    finally:
        await dlq_consumer.stop()
    assert len(messages) == 2
    first = min(messages, key=lambda m: dict(m.headers)["dlq.source.offset"])
    headers = {k: v.decode() for k, v in first.headers}
    assert first.value == b"\x00not json at all"
    assert headers["dlq.source.topic"] == harness.topic
    assert headers["dlq.source.offset"] == str(rows[0]["offset"])
    assert headers["dlq.error"].startswith("invalid event")


async def test_a_failing_handler_dead_letters_only_its_own_event(harness):
    bad = session_booked(session_type="explode")
    good = session_booked()
    await harness.publish(bad.to_bytes(), b"same-key")
    await harness.publish(good.to_bytes(), b"same-key")
    await eventually(harness.effects)
    assert await harness.effects() == [good.event_id]
    [row] = await harness.pool.fetch("SELECT error FROM dead_letters")
    assert row["error"] == "handler failed: ValueError: handler bug"
    processed = {r["event_id"] for r in await harness.pool.fetch("SELECT event_id FROM processed_events")}
    assert processed == {good.event_id}, "the failed event is not marked processed"


async def test_a_transient_failure_redelivers_the_batch_until_it_is_processed_once(harness):
    harness.fail_with = [ConnectionResetError("db went away"), ConnectionResetError("again")]
    env = session_booked()
    await harness.publish(env.to_bytes(), env.key)
    await eventually(harness.effects)
    assert await harness.effects() == [env.event_id]
    assert harness.calls == [env.event_id] * 3
    assert await harness.pool.fetchval("SELECT count(*) FROM dead_letters") == 0


async def test_offsets_are_committed_only_after_the_handlers_transaction_commits(harness):
    harness.gate = asyncio.Event()
    env = session_booked()
    meta = await harness.publish(env.to_bytes(), env.key)
    tp = TopicPartition(meta.topic, meta.partition)
    await eventually(lambda: _n(len(harness.calls), 1))
    await asyncio.sleep(0.5)  # give an (incorrect) early commit the time to happen
    early = await _committed(harness, tp)
    assert early is None or early <= meta.offset, "offset committed before the transaction"
    assert await harness.effects() == [], "the transaction is still open"
    harness.gate.set()
    await eventually(harness.effects)
    committed = await eventually(lambda: _committed_past(harness, tp, meta.offset))
    assert committed == meta.offset + 1


async def _committed(harness, tp):
    probe = AIOKafkaConsumer(bootstrap_servers=harness.infra.bootstrap_servers,
                             group_id=harness.prefix + "test", enable_auto_commit=False)
    await probe.start()
    try:
        return await probe.committed(tp)
    finally:
        await probe.stop()


async def _committed_past(harness, tp, offset):
    committed = await _committed(harness, tp)
    return committed if committed is not None and committed > offset else None
