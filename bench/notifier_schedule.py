"""Texts scheduled from events: SessionBooked events (dosing sessions: confirmation, prep,
ride reminder, fasting reminder, day-of reminder) through the notifier's consumer
(EventConsumer: processed-events rows, the appointment, the clinic's policy, the texts, one
transaction per batch) against a raw aiokafka consumer that only plans the same texts and
inserts them with one statement per batch, on the same broker and PostgreSQL.

Usage: python -m bench.notifier_schedule [--events N]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.common import consume_all, infrastructure, judge, report
from bench.notifier_common import notifier_pool
from services.notifier import handlers
from services.notifier.schedule import Appointment, QuietHours, plan_texts
from shared.consumer import EventConsumer
from shared.events import parse_envelope
from shared.events.booking import SessionBooked
from shared.kafka import ensure_topics
from tests.helpers import session_booked

TOPIC = "bench.notifier.booking.events"
FAST = dict(session_timeout_ms=2000, heartbeat_interval_ms=300)


async def produce(bootstrap: str, n: int) -> None:
    """n dosing sessions booked over the next weeks in a few networks."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    try:
        clinics = [uuid.uuid4() for _ in range(5)]
        futures = []
        for i in range(n):
            env = session_booked(clinic_id=clinics[i % 5], starts_in=timedelta(days=2 + i % 20,
                                                                               minutes=15 * (i % 40)))
            futures.append(await producer.send(TOPIC, env.to_bytes(), key=env.key))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def count_texts(pool) -> int:
    async with pool.acquire() as conn:
        return await conn.fetchval("SELECT count(*) FROM texts")


async def raw(bootstrap: str, n: int, pool) -> float:
    """The least work that turns these events into text rows."""
    consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=bootstrap, group_id=f"raw-{uuid.uuid4()}",
                                auto_offset_reset="earliest", enable_auto_commit=False, **FAST)
    await consumer.start()
    done, first = 0, None
    try:
        while done < n:
            batches = await consumer.getmany(timeout_ms=100, max_records=500)
            records = [r for batch in batches.values() for r in batch]
            if records:
                first = first or time.perf_counter()
                rows = []
                now = datetime.now(UTC)
                for env in (parse_envelope(r.value) for r in records):
                    b = env.payload
                    for p in plan_texts(Appointment(b.starts_at, b.ends_at, b.site_timezone,
                                                    b.is_dosing), now):
                        rows.append((env.clinic_id, env.patient_id, b.booking_id, p.kind, p.due_at,
                                     p.valid_until))
                async with pool.acquire() as conn:
                    await conn.execute(
                        "INSERT INTO texts (clinic_id, patient_id, booking_id, booking_version,"
                        " kind, due_at, valid_until) SELECT c, p, b, 1, k, d, v FROM unnest("
                        "$1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::timestamptz[],"
                        " $6::timestamptz[]) AS t(c, p, b, k, d, v)",
                        *[list(column) for column in zip(*rows, strict=True)])
                await consumer.commit()
                done += len(records)
    finally:
        await consumer.stop()
    return await count_texts(pool) / (time.perf_counter() - first)


async def ours(bootstrap: str, n: int, pool) -> float:
    booked = partial(handlers.on_sessions_booked, quiet=QuietHours())
    consumer = EventConsumer(f"notifier-{uuid.uuid4()}", lambda: pool, {}, batch_handlers={
        SessionBooked: handlers.in_order({}, booked)})  # as the notifier's bootstrap does
    elapsed = await consume_all(bootstrap, TOPIC, consumer, n, **FAST)
    return await count_texts(pool) / elapsed


async def main(n: int) -> bool:
    with infrastructure() as (db, kafka):
        await ensure_topics(kafka, 6, [TOPIC])
        await produce(kafka, n)
        raw_pool = await notifier_pool(db, "bench_notifier_schedule_raw")
        ours_pool = await notifier_pool(db, "bench_notifier_schedule")
        try:
            raw_rate = await raw(kafka, n, raw_pool)
            ours_rate = await ours(kafka, n, ours_pool)
        finally:
            await raw_pool.close()
            await ours_pool.close()
    ok = report(f"texts scheduled from {n:,} SessionBooked events (dosing sessions)", [
        ("raw aiokafka + plan + one INSERT per batch", raw_rate),
        ("notifier consumer (EventConsumer + handlers)", ours_rate)],
        baseline="raw aiokafka + plan + one INSERT per batch", unit="texts/s")
    absolute = judge("texts scheduled from events", ours_rate, 10_000, "texts/s")
    print(f"   absolute target >= 10,000 texts/s scheduled: {'met' if absolute else 'NOT met'}")
    return ok and absolute


def run(argv=None) -> bool:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    args, _ = parser.parse_known_args(argv)
    return asyncio.run(main(args.events))


if __name__ == "__main__":
    raise SystemExit(0 if run() else 1)
