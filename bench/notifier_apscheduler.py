"""The same reminders scheduled and fired by the notifier and by APScheduler 3.x
(AsyncIOScheduler with its SQLAlchemyJobStore on the same PostgreSQL).

Scheduling N reminders: APScheduler's `add_job` (a date trigger each) against the notifier's
consumer taking the SessionBooked events that plan them (5 reminders per dosing session;
records handed to `EventConsumer.process` in batches of 500, as the broker would).
Firing N reminders that all fall due at the same moment: APScheduler runs a coroutine per
job; the notifier's Dispatcher sends each text (zero-latency sender) and records it, in one
instance (in this process) and in two (each its own process, as deployed; APScheduler 3.x
cannot share its job store between schedulers, so it runs as one).
Fires/s = N / (last fired - first due); lateness = fired - due. Both sides start each firing
idle, their work stored (APScheduler's jobs added while it is paused, the notifier's texts
once its processes are ready: `apscheduler_fire`, `fire_burst`), warm, and on the services'
event loop (uvloop).
Scheduling takes a fraction of a second for the notifier: both sides schedule once untimed
(warm-up), then the median of 3 timed rounds is reported for each. Firing runs 3 rounds of
APScheduler then the notifier's two instances; the target, >= 20x, is judged on the median of
the rounds' ratios. Last, as ceilings (not judged): the bare claim loop and the dispatcher's
statements alone (no rendering, checks or sending) on the same burst, each on 2 connections.

Usage: python -m bench.notifier_apscheduler [--reminders N]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import NamedTuple

import asyncpg
from aiokafka.structs import ConsumerRecord
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bench.common import ROUNDS, infrastructure, judge, median, run_as_deployed
from bench.notifier_common import (
    ANY_HOUR,
    DEPLOYED_BATCH,
    DEPLOYED_POOL_MIN,
    ZeroLatencySender,
    lateness,
    notifier_pool,
    percentile,
    seed_due,
)
from bench.notifier_dispatch import bare_claim_loop, dispatcher_loop, statements_loop
from services.notifier import handlers
from services.notifier.dispatcher import Dispatcher
from shared.consumer import EventConsumer
from shared.events.booking import SessionBooked
from shared.runtime import settle_collector
from tests.helpers import session_booked

FIRED: dict[int, float] = {}


class Fired(NamedTuple):
    rate: float
    """Fires per second: the texts / (the last one sent - the moment they fell due)."""
    late: list[float]


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


async def fresh_schema(db: str) -> None:
    conn = await asyncpg.connect(db)
    try:
        await conn.execute("DROP SCHEMA IF EXISTS bench_apscheduler CASCADE;"
                           " CREATE SCHEMA bench_apscheduler")
    finally:
        await conn.close()


async def apscheduler_adds(db: str, n: int) -> float:
    """APScheduler's adds/s: the median of `ROUNDS` timed rounds after a warm-up."""
    await fresh_schema(db)
    sched = scheduler(db)
    sched.start()  # running, as in production: each add wakes it
    try:
        later = datetime.now(UTC) + timedelta(days=3)
        add_jobs(sched, [later + timedelta(seconds=i) for i in range(n // 10)])  # warm-up
        sched.remove_all_jobs()
        settle_collector()  # as the services do once started, on both sides
        rounds = []
        for _ in range(ROUNDS):
            rounds.append(add_jobs(sched, [later + timedelta(seconds=i) for i in range(n)]))
            sched.remove_all_jobs()
        sched.pause()  # the wakeups the adds queued (one each) then return at once:
        await asyncio.sleep(0)  # run them now, not later in the notifier's turn
        return statistics.median(rounds)
    finally:
        sched.shutdown(wait=False)


async def apscheduler_fire(db: str, n: int, adds: float) -> Fired:
    """APScheduler firing `n` jobs all due at the same moment, on a fresh job table, from a
    scheduler with nothing else to do. The jobs are added while it is paused: each add to a
    running AsyncIOScheduler queues a wakeup on the event loop (`add_job` -> `wakeup`), and
    the `n` queued wakeups then run back to back, each reading the job table twice, for
    seconds; when they overran the moment the jobs fell due (as they did under load), the
    firing was timed from before the scheduler could start it (it fired nothing until they
    were through, then all at once): rounds of 1,249, 821 and 236 fires/s. The notifier's
    texts are stored before its dispatchers look, too (`fire_burst`)."""
    await fresh_schema(db)  # firing on a job table no earlier round filled with dead rows
    sched = scheduler(db)
    sched.start(paused=True)
    try:
        margin = 2.0
        while True:  # jobs falling due after they are all added (twice the time adding takes)
            first_due = datetime.now(UTC) + timedelta(seconds=2 * n / adds + margin)
            due = [first_due] * n  # a burst: all due at the same moment
            FIRED.clear()
            add_jobs(sched, due)
            if datetime.now(UTC) < first_due - timedelta(seconds=0.5):
                break
            sched.remove_all_jobs()  # adding overran the moment: again, with more time
            margin *= 2
        gc.collect()  # the adds' garbage is collected before the firing, not during it
        sched.resume()  # one wakeup: it sleeps until the jobs fall due
        deadline = time.time() + 2 * n / adds + margin + 120
        while len(FIRED) < n and time.time() < deadline:
            await asyncio.sleep(0.2)
    finally:
        sched.shutdown(wait=False)
    late = [FIRED[i] - due[i].timestamp() for i in FIRED]
    return Fired(len(FIRED) / (max(FIRED.values()) - due[0].timestamp()), late)


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


async def notifier_schedules(db: str, n: int) -> float:
    """The notifier's reminders scheduled/s: the median of `ROUNDS` timed rounds after a
    warm-up."""
    pool = await notifier_pool(db, "bench_notifier_vs_apscheduler")
    try:
        await schedule(pool, n // 10)  # warm-up
        settle_collector()  # as the service does once started (`ServiceRuntime.lifespan`)
        return statistics.median([await schedule(pool, n) for _ in range(ROUNDS)])
    finally:
        await pool.close()


async def fire_burst(db: str, n: int, instances: int) -> Fired:
    """`n` texts falling due at the same moment, sent by the dispatchers of `instances`
    notifier instances: one in this process, or each in its own process, as deployed (the
    texts are stored once the processes are ready, due 3 s later: starting them takes
    seconds under load, and texts due before they look would be timed from before)."""
    schema = f"bench_notifier_fire_{instances}"
    pool = await notifier_pool(db, schema, min_size=DEPLOYED_POOL_MIN)  # its dispatcher's
    try:
        # confirmations: quoting a date, they go when due (a text naming a day waits for it)
        seed = partial(seed_due, pool, n, ("confirmation",))
        if instances > 1:
            await dispatcher_loop(db, schema, n, processes=instances,
                                  before_go=partial(seed, first_due_in=3.0))
        else:
            count = await seed(first_due_in=10.0)
            task = asyncio.create_task(Dispatcher(pool, ZeroLatencySender(), batch_size=DEPLOYED_BATCH,
                                                  quiet=ANY_HOUR).run())
            try:
                while len(await lateness(pool)) < count:
                    await asyncio.sleep(0.2)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        async with pool.acquire() as conn:
            span = await conn.fetchval("SELECT extract(epoch FROM max(sent_at) - min(due_at))"
                                       " FROM texts")
        return Fired(n / float(span), await lateness(pool))
    finally:
        await pool.close()


async def burst_ceilings(db: str, n: int) -> list[tuple[str, float]]:
    """What the same burst of `n` texts allows with no dispatcher around its SQL, on 2
    connections as the 2 instances have: the bare claim loop (`FOR UPDATE SKIP LOCKED`, then
    mark done), and the dispatcher's own statements back to back (pick with context, claim
    with a body, SID + `SmsSent`; no rendering, checks or sending). Texts/s from the loops'
    start, the texts already due (no wake-up to wait for): ceilings, not judged."""
    rates = []
    for name, loop in (("bare claim loop, same burst", bare_claim_loop),
                       ("its statements alone, same burst",
                        partial(statements_loop, events=True))):
        pool = await notifier_pool(db, "bench_notifier_fire_ceiling")
        try:
            await seed_due(pool, n, ("confirmation",))
            rates.append((name, await loop(pool, n)))
        finally:
            await pool.close()
    return rates


async def schedule(pool: asyncpg.Pool, n: int) -> float:
    """Texts/s of the notifier's consumer scheduling the `n` reminders of `n` / 5 dosing
    sessions booked (empty tables first)."""
    records = booking_records(n // 5)
    consumer = EventConsumer("notifier", lambda: pool, {}, batch_handlers={
        SessionBooked: handlers.in_order({}, partial(handlers.on_sessions_booked))})
    async with pool.acquire() as conn:
        await conn.execute("TRUNCATE texts, appointments, processed_events")
    started = time.perf_counter()
    for i in range(0, len(records), 500):
        await consumer.process(records[i:i + 500])
    elapsed = time.perf_counter() - started
    async with pool.acquire() as conn:
        scheduled = await conn.fetchval("SELECT count(*) FROM texts")
    return scheduled / elapsed


def line(name: str, rate: float, unit: str, late: list[float] | None = None) -> None:
    extra = f"   lateness p50 {percentile(late, 0.5):6.3f} s, p99 {percentile(late, 0.99):6.3f} s" \
        if late is not None else ""
    print(f"   {name:<34} {rate:>10,.0f} {unit}{extra}")


async def main(n: int) -> bool:
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    with infrastructure() as (db, _kafka):
        adds = await apscheduler_adds(db, n)
        scheduled = await notifier_schedules(db, n)
        rounds = []  # firing: APScheduler, then the notifier as deployed, round after round
        for _ in range(ROUNDS):
            rounds.append((await apscheduler_fire(db, n, adds),
                           await fire_burst(db, n, instances=2)))
        one = await fire_burst(db, n, instances=1)
        ceilings = await burst_ceilings(db, n)
    aps = [a for a, _ in rounds]
    two = [t for _, t in rounds]
    print(f"\n== {n:,} reminders scheduled and fired: the notifier vs APScheduler 3.x"
          f" (SQLAlchemyJobStore, same PostgreSQL), medians of {ROUNDS} rounds")
    line("APScheduler add_job", adds, "adds/s")
    line("notifier consumer (SessionBooked)", scheduled, "texts/s")
    middle = sorted(range(ROUNDS), key=lambda r: two[r].rate / aps[r].rate)[ROUNDS // 2]
    line("APScheduler firing", median([a.rate for a in aps]), "fires/s", aps[middle].late)
    line("notifier, 2 instances (as deployed)", median([t.rate for t in two]), "texts/s",
         two[middle].late)
    line("notifier, 1 instance (one round)", one.rate, "texts/s", one.late)
    aps_rate = median([a.rate for a in aps])
    for name, rate in ceilings:
        print(f"   {name:<34} {rate:>10,.0f} texts/s   {rate / aps_rate:5.1f}x APScheduler (a ceiling)")
    print(f"   rounds, firing: APScheduler {', '.join(f'{a.rate:,.0f}' for a in aps)} fires/s;"
          f" notifier {', '.join(f'{t.rate:,.0f}' for t in two)} texts/s (lateness: the"
          " median round's)")
    print("   (APScheduler 3.x runs as one scheduler: its job stores cannot be shared)")
    ok = True
    firing = median([t.rate / a.rate for a, t in rounds])
    for what, ratio in (("scheduling", scheduled / adds),
                        ("firing (median of the rounds' ratios)", firing)):
        met = judge(f"{what} vs APScheduler", ratio, 20, "x")
        ok &= met
        print(f"   {what}: {ratio:,.1f}x APScheduler (target >= 20x: {'met' if met else 'NOT met'})")
    print(f"   firing, 1 instance: {one.rate / median([a.rate for a in aps]):,.1f}x APScheduler")
    return ok


def run(argv=None) -> bool:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reminders", type=int, default=5_000)
    args, _ = parser.parse_known_args(argv)
    return run_as_deployed(main(args.reminders))


if __name__ == "__main__":
    raise SystemExit(0 if run() else 1)
