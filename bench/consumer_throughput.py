"""Consumer throughput: the project's consumer path against a raw aiokafka consumer doing
the same work, on the same broker and data.

Two comparisons, each with the raw consumer as baseline:
  validate   - FastStream batch subscriber + event validation vs aiokafka getmany + validation
  exactly-once - the full EventConsumer (validation, processed-events rows and the handler in
               one transaction per batch, offsets committed after it) vs aiokafka doing the same
               INSERT in one transaction per batch and committing after it.
Each is judged on the medians of `ROUNDS` rounds (each side once a round): single runs here
swung from 0.43x to 1.15x with the same code. Both sides run with the garbage collector set
as the services set it once started (`shared.runtime.settle_collector`).
Usage: python -m bench.consumer_throughput [--events N]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from faststream import AckPolicy
from faststream.kafka import KafkaBroker

from bench.common import ROUNDS, infrastructure, median, report
from shared.consumer import EventConsumer
from shared.db import SHARED_MIGRATIONS, apply_migrations, create_pool, discover_migrations
from shared.events import parse_envelope
from shared.events.booking import SessionBooked
from shared.kafka import ensure_topics
from shared.runtime import settle_collector
from tests.helpers import session_booked

TOPIC = "bench.booking.events"
MAX_RECORDS = 500
INSERT = ("INSERT INTO processed_events (consumer, event_id) SELECT $1, unnest($2::uuid[])"
          " ON CONFLICT DO NOTHING")
FAST = dict(session_timeout_ms=2000, heartbeat_interval_ms=300)


class Meter:
    def __init__(self, total: int):
        self.total = total
        self.count = 0
        self.first: float | None = None
        self.last = 0.0
        self.done = asyncio.Event()

    def add(self, n: int) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        self.count += n
        self.last = now
        if self.count >= self.total:
            self.done.set()

    @property
    def rate(self) -> float:
        return self.count / (self.last - self.first) if self.first and self.last > self.first else 0.0


async def produce(bootstrap: str, n: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5,
                                max_batch_size=1 << 20)
    await producer.start()
    try:
        patients = [uuid.uuid4() for _ in range(200)]
        futures = []
        for i in range(n):
            env = session_booked(patient_id=patients[i % len(patients)])
            futures.append(await producer.send(TOPIC, env.to_bytes(), key=env.key))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def raw_aiokafka(bootstrap: str, n: int, pool=None) -> float:
    meter = Meter(n)
    group = f"raw-{uuid.uuid4()}"  # its processed-events rows too: new each round, as the
    # EventConsumer side's (with one name, rounds 2 and 3 found every row there: half the SQL work)
    consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=bootstrap, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False, **FAST)
    await consumer.start()
    try:
        while not meter.done.is_set():
            batches = await consumer.getmany(timeout_ms=100, max_records=MAX_RECORDS)
            for records in batches.values():
                events = [parse_envelope(r.value) for r in records]
                if pool is not None:
                    async with pool.acquire() as conn, conn.transaction():
                        await conn.execute(INSERT, group, [e.event_id for e in events])
                await consumer.commit()
                meter.add(len(events))
    finally:
        await consumer.stop()
    return meter.rate


async def faststream_validate(bootstrap: str, n: int) -> float:
    meter = Meter(n)
    broker = KafkaBroker(bootstrap, log_level=10)

    async def raw(msg):
        return msg.raw_message

    @broker.subscriber(TOPIC, group_id=f"fs-{uuid.uuid4()}", batch=True, max_records=MAX_RECORDS,
                       batch_timeout_ms=100, auto_offset_reset="earliest",
                       ack_policy=AckPolicy.NACK_ON_ERROR, decoder=raw, **FAST)
    async def handle(records):
        meter.add(len([parse_envelope(r.value) for r in records]))

    await broker.start()
    try:
        await meter.done.wait()
    finally:
        await broker.stop()
    return meter.rate


async def event_consumer(bootstrap: str, n: int, pool) -> float:
    meter = Meter(n)
    broker = KafkaBroker(bootstrap, log_level=10)

    async def noop(conn, env):
        pass

    consumer = EventConsumer(f"ec-{uuid.uuid4()}", lambda: pool, {SessionBooked: noop})
    original = consumer.process

    async def counted(records):
        result = await original(records)
        meter.add(len(records))
        return result

    consumer.process = counted  # type: ignore[method-assign]
    consumer.subscribe(broker, TOPIC, max_records=MAX_RECORDS, **FAST)
    await broker.start()
    try:
        await meter.done.wait()
    finally:
        await broker.stop()
    return meter.rate


async def main(n: int) -> bool:
    with infrastructure() as (db, kafka):
        await ensure_topics(kafka, 6, [TOPIC])
        await produce(kafka, n)
        pool = await create_pool(db, "bench_consumer", max_size=4)
        await apply_migrations(pool, discover_migrations(SHARED_MIGRATIONS))
        rounds: dict[str, list[float]] = {"raw_v": [], "fs_v": [], "raw_db": [], "ec": []}
        settle_collector()  # as a service does once started; both sides run under it
        try:
            for _ in range(ROUNDS):  # each side once a round, one after the other
                rounds["raw_v"].append(await raw_aiokafka(kafka, n))
                rounds["fs_v"].append(await faststream_validate(kafka, n))
                rounds["raw_db"].append(await raw_aiokafka(kafka, n, pool))
                rounds["ec"].append(await event_consumer(kafka, n, pool))
        finally:
            await pool.close()
    raw_v, fs_v, raw_db, ec = (median(rounds[k]) for k in ("raw_v", "fs_v", "raw_db", "ec"))
    ok = report(f"consume {n:,} events: validation only", [
        ("raw aiokafka getmany + validation", raw_v),
        ("FastStream batch subscriber + validation", fs_v)],
        baseline="raw aiokafka getmany + validation", target=0.8)
    ok &= report(f"consume {n:,} events: exactly-once path (processed-events rows, commit per batch)", [
        ("raw aiokafka + same SQL per batch", raw_db),
        ("EventConsumer (FastStream)", ec)],
        baseline="raw aiokafka + same SQL per batch", target=0.8)
    print("   rounds (events/s): " + "; ".join(
        f"{name} {', '.join(f'{v:,.0f}' for v in rounds[key])}" for name, key in (
            ("raw", "raw_v"), ("FastStream", "fs_v"), ("raw + SQL", "raw_db"),
            ("EventConsumer", "ec"))))
    return ok


def run(argv=None) -> bool:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    args, _ = parser.parse_known_args(argv)
    return asyncio.run(main(args.events))


if __name__ == "__main__":
    raise SystemExit(0 if run() else 1)
