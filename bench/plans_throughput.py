"""Booking events through the plans consumer (FastStream batch subscriber, processed-events
rows, plan recomputation once per plan and batch, outbox) against a raw aiokafka consumer
doing the same PostgreSQL write (the same batch handler, one transaction per batch, commit
after it), on the same broker and data.

Usage: python -m bench.plans_throughput [--events N] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.common import consume_all, infrastructure, judge, report
from services.plans import handlers
from shared.consumer import EventConsumer
from shared.db import SHARED_MIGRATIONS, apply_migrations, create_pool, discover_migrations
from shared.events import parse_envelope
from shared.kafka import ensure_topics
from tests.plan_helpers import Patient, days_ago

TOPIC = "bench.plans.booking.events"
FAST = dict(session_timeout_ms=2000, heartbeat_interval_ms=300)
MIGRATIONS = Path(handlers.__file__).with_name("migrations")


async def produce(bootstrap: str, n: int) -> None:
    """Booking histories of many patients: each books, checks in and completes sessions."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    try:
        futures, count = [], 0
        clinics = [uuid.uuid4() for _ in range(5)]  # a few networks with many patients each
        while count < n:
            pat = Patient(clinic_id=clinics[count % len(clinics)])
            for i in range(3):
                for env in pat.attend("iv_infusion", days_ago(20 - 3 * i)):
                    futures.append(await producer.send(TOPIC, env.to_bytes(), key=env.key))
                    count += 1
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def fresh_pool(db: str, schema: str):
    pool = await create_pool(db, schema, max_size=4)
    await apply_migrations(pool, discover_migrations(SHARED_MIGRATIONS, MIGRATIONS))
    return pool


async def raw(bootstrap: str, n: int, pool) -> float:
    consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=bootstrap, group_id=f"raw-{uuid.uuid4()}",
                                auto_offset_reset="earliest", enable_auto_commit=False, **FAST)
    await consumer.start()
    done, first = 0, None
    try:
        while done < n:
            for records in (await consumer.getmany(timeout_ms=100, max_records=500)).values():
                first = first or time.perf_counter()
                async with pool.acquire() as conn, conn.transaction():
                    await handlers.on_booking_events(conn, [parse_envelope(r.value) for r in records])
                await consumer.commit()
                done += len(records)
    finally:
        await consumer.stop()
    return done / (time.perf_counter() - first)


async def project(bootstrap: str, n: int, pool) -> float:
    consumer = EventConsumer(f"plans-{uuid.uuid4()}", lambda: pool, {},
                             batch_handlers={e: handlers.on_booking_events for e in handlers.STATUS_OF})
    return n / await consume_all(bootstrap, TOPIC, consumer, n, **FAST)


async def main(n: int, rounds: int) -> bool:
    """Raw and ours alternately, `rounds` times each on fresh schemas and consumer groups;
    the median of each (this machine is shared, single runs vary)."""
    raw_rates, our_rates = [], []
    with infrastructure() as (db, kafka):
        await ensure_topics(kafka, 6, [TOPIC])
        await produce(kafka, n)
        for i in range(rounds):
            raw_pool = await fresh_pool(db, f"bench_plans_raw{i}")
            ours_pool = await fresh_pool(db, f"bench_plans{i}")
            try:
                raw_rates.append(await raw(kafka, n, raw_pool))
                our_rates.append(await project(kafka, n, ours_pool))
            finally:
                await raw_pool.close()
                await ours_pool.close()
    raw_rate, ours = statistics.median(raw_rates), statistics.median(our_rates)
    ok = report(f"{n:,} booking events into plans (median of {rounds} rounds)", [
        ("raw aiokafka + the same handler per batch", raw_rate),
        ("plans consumer (EventConsumer)", ours)],
        baseline="raw aiokafka + the same handler per batch", target=0.5)
    print(f"   rounds: raw {', '.join(f'{r:,.0f}' for r in raw_rates)}; "
          f"ours {', '.join(f'{r:,.0f}' for r in our_rates)} events/s")
    absolute = judge("plans consumer", ours, 5000, "events/s")
    print(f"   absolute target >= 5,000 events/s: {'met' if absolute else 'NOT met'}")
    return ok and absolute


def run(argv=None) -> bool:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args, _ = parser.parse_known_args(argv)
    return asyncio.run(main(args.events, args.rounds))


if __name__ == "__main__":
    raise SystemExit(0 if run() else 1)
