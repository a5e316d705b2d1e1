"""The same reminders scheduled and fired by the notifier and by APScheduler 3.x
(AsyncIOScheduler with its SQLAlchemyJobStore on the same PostgreSQL).

Scheduling N reminders: APScheduler's `add_job` (a date trigger each) against the notifier's
consumer taking the SessionBooked events that plan them (5 reminders per dosing session;
records handed to `EventConsumer.process` in batches of 500, as the broker would).
Firing N reminders that all fall due at the same moment: APScheduler runs a coroutine per
job; the notifier's Dispatcher sends each text (zero-latency sender) and records it.
Fires/s = N / (last fired - first due); lateness = fired - due.

Usage: python -m bench.notifier_apscheduler [--reminders N]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial

import asyncpg
from aiokafka.structs import ConsumerRecord
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bench.common import infrastructure
from bench.notifier_common import (ANY_HOUR, ZeroLatencySender, lateness, notifier_pool,
                                   percentile, seed_due)
from services.notifier import handlers
from services.notifier.dispatcher import Dispatcher
from shared.consumer import EventConsumer
from shared.events.booking import SessionBooked
from tests.helpers import session_booked

FIRED: dict[int, float] = {}


async def fire(i: int) -> None:
    """APScheduler's job: note when it ran."""
    FIRED[i] = time.time()


# --- APScheduler ---------------------------------------------------------------------------

def scheduler(db: str) -> AsyncIOScheduler:
    store = SQLAlchemyJobStore(url=db.replace("postgresql://", "postgresql+psycopg2://", 1),
                               tableschema="bench_apscheduler")
    return AsyncIOScheduler(jobstores={"default": store}, timezone=UTC,
                            job_defaults={"misfire_grace_time": None, "coalesce": False})


def add_jobs(sched: AsyncIOScheduler, due: list[datetime]) -> float:
    started = time.perf_counter()
    for i, when in enumerate(due):
        sched.add_job(fire, "date", run_date=when, args=[i], id=str(i))
    return len(due) / (time.perf_counter() - started)


async def apscheduler_run(db: str, n: int) -> tuple[float, float, list[float]]:
    """(adds/s, fires/s, lateness) of APScheduler."""
    conn = await asyncpg.connect(db)
    try:
        await conn.execute("DROP SCHEMA IF EXISTS bench_apscheduler CASCADE;"
                           " CREATE SCHEMA bench_apscheduler")
    finally:
        await conn.close()
    sched = scheduler(db)
    sched.start()  # running, as in production: each add wakes it
    try:
        later = datetime.now(UTC) + timedelta(days=3)
        adds = add_jobs(sched, [later + timedelta(seconds=i) for i in range(n)])
        sched.remove_all_jobs()
        # jobs falling due after they are all added (twice the time adding took, and more)
        first_due = datetime.now(UTC) + timedelta(seconds=2 * n / adds + 2)
        due = [first_due] * n  # a burst: all due at the same moment
        FIRED.clear()
        add_jobs(sched, due)
        deadline = time.time() + 2 * n / adds + 120
        while len(FIRED) < n and time.time() < deadline:
            await asyncio.sleep(0.2)
    finally:
        sched.shutdown(wait=False)
    late = [FIRED[i] - due[i].timestamp() for i in FIRED]
    fires = len(FIRED) / (max(FIRED.values()) - due[0].timestamp())
    return adds, fires, late


# --- the notifier --------------------------------------------------------------------------

def booking_records(n_events: int) -> list[ConsumerRecord]:
    clinics = [uuid.uuid4() for _ in range(5)]
    records = []
    for i in range(n_events):
        env = session_booked(clinic_id=clinics[i % 5],
                             starts_in=timedelta(days=2 + i % 20, minutes=15 * (i % 40)))
        records.append(ConsumerRecord("booking.events", 0, i, 0, 0, env.key, env.to_bytes(),
                                      None, 0, 0, ()))
    return records


async def notifier_run(db: str, n: int) -> tuple[float, float, list[float]]:
    """(reminders scheduled/s, fires/s, lateness) of the notifier."""
    pool = await notifier_pool(db, "bench_notifier_vs_apscheduler")
    try:
        records = booking_records(n // 5)
        consumer = EventConsumer("notifier", lambda: pool, {}, batch_handlers={
            SessionBooked: handlers.in_order({}, partial(handlers.on_sessions_booked))})
        started = time.perf_counter()
        for i in range(0, len(records), 500):
            await consumer.process(records[i:i + 500])
        elapsed = time.perf_counter() - started
        async with pool.acquire() as conn:
            scheduled = await conn.fetchval("SELECT count(*) FROM texts")
            await conn.execute("TRUNCATE texts")
        count = await seed_due(pool, n, ("day_of",), first_due_in=10.0)
        task = asyncio.create_task(Dispatcher(pool, ZeroLatencySender(), batch_size=500,
                                              quiet=ANY_HOUR).run())
        try:
            while len(late := await lateness(pool)) < count:
                await asyncio.sleep(0.2)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        async with pool.acquire() as conn:
            span = await conn.fetchval("SELECT extract(epoch FROM max(sent_at) - min(due_at))"
                                       " FROM texts")
        return scheduled / elapsed, count / float(span), late
    finally:
        await pool.close()


def line(name: str, rate: float, unit: str, late: list[float] | None = None) -> None:
    extra = f"   lateness p50 {percentile(late, 0.5):6.3f} s, p99 {percentile(late, 0.99):6.3f} s" \
        if late is not None else ""
    print(f"   {name:<34} {rate:>10,.0f} {unit}{extra}")


async def main(n: int) -> bool:
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    with infrastructure() as (db, _kafka):
        adds, aps_fires, aps_late = await apscheduler_run(db, n)
        scheduled, fires, late = await notifier_run(db, n)
    print(f"\n== {n:,} reminders scheduled and fired: the notifier vs APScheduler 3.x"
          " (SQLAlchemyJobStore, same PostgreSQL)")
    line("APScheduler add_job", adds, "adds/s")
    line("notifier consumer (SessionBooked)", scheduled, "texts/s")
    line("APScheduler firing", aps_fires, "fires/s", aps_late)
    line("notifier Dispatcher", fires, "texts/s", late)
    ok = True
    for what, ratio in (("scheduling", scheduled / adds), ("firing", fires / aps_fires)):
        met = ratio >= 20
        ok &= met
        print(f"   {what}: {ratio:,.1f}x APScheduler (target >= 20x: {'met' if met else 'NOT met'})")
    return ok


def run(argv=None) -> bool:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reminders", type=int, default=5_000)
    args, _ = parser.parse_known_args(argv)
    return asyncio.run(main(args.reminders))


if __name__ == "__main__":
    raise SystemExit(0 if run() else 1)
