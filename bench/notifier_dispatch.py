"""The notifier's dispatcher on PostgreSQL, with a sender that answers at once.

1. Throughput: N due texts through the dispatchers of two notifier instances (each its own
   process, running as in the service: claim, context, settle, render, check, send, SID +
   SmsSent recorded, several batches in flight) against a bare SQL loop on a copy of the
   same rows (claim with FOR UPDATE SKIP LOCKED, then mark done; batches of 500, 2
   connections).
2. Lateness: with 1,000,000 future texts pending, a stream of texts falls due during the
   run; p50/p99 of sent_at - due_at of those, against the same stream with nothing pending.

Usage: python -m bench.notifier_dispatch [--texts N] [--pending N] [--stream N]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import time

import asyncpg

from bench.common import infrastructure, report
from bench.notifier_common import (ANY_HOUR, ZeroLatencySender, lateness, notifier_pool,
                                   percentile, seed_due, seed_future)
from services.notifier.dispatcher import CRITICAL_KINDS, Dispatcher
from services.notifier.handlers import Q

BATCH = 500
CLAIM = ("UPDATE texts SET status = 'sending', claimed_at = now() WHERE id IN ("
         " SELECT id FROM texts WHERE status = 'pending' AND due_at <= now()"
         " ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED) RETURNING id")
UNSENT = "SELECT EXISTS (SELECT 1 FROM texts WHERE status IN ('pending', 'sending'))"
"""Whether any text is still to send (by the partial indexes of pending and claimed texts)."""
DONE = "UPDATE texts SET status = 'sent', sent_at = now() WHERE id = ANY($1::bigint[])"


async def bare_claim_loop(pool, n: int) -> float:
    async def worker() -> None:
        async with pool.acquire() as conn:
            while ids := [r["id"] for r in await conn.fetch(CLAIM, BATCH)]:
                await conn.execute(DONE, ids)

    started = time.perf_counter()
    await asyncio.gather(worker(), worker())
    return n / (time.perf_counter() - started)


def _dispatcher_process(db: str, schema: str, ready, go) -> None:
    """One notifier instance's dispatcher (its own process, as deployed), running until no
    text is left to send."""
    async def main() -> None:
        pool = await notifier_pool(db, schema, fresh=False)
        try:
            gc.freeze()  # as the service does once started (`ServiceRuntime.lifespan`)
            ready.set()
            await asyncio.to_thread(go.wait)
            task = asyncio.create_task(Dispatcher(pool, ZeroLatencySender(), batch_size=BATCH,
                                                  quiet=ANY_HOUR, poll_seconds=0.05).run())
            try:
                async with pool.acquire() as conn:
                    while await conn.fetchval(UNSENT):
                        await asyncio.sleep(0.25)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        finally:
            await pool.close()
    asyncio.run(main())


async def dispatcher_loop(db: str, schema: str, n: int, processes: int = 2) -> float:
    """`processes` notifier instances' dispatchers running as in the service (`run`: claims,
    batches in flight), each in its own process: texts/s from the start until the last of
    the `n` texts is recorded as sent (the processes' shutdown is not timed)."""
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    ready = [ctx.Event() for _ in range(processes)]
    procs = [ctx.Process(target=_dispatcher_process, args=(db, schema, r, go)) for r in ready]
    watcher = await asyncpg.connect(db, server_settings={"search_path": schema})
    try:
        for proc in procs:
            proc.start()
        for r in ready:
            await asyncio.to_thread(r.wait, 60)
        started = time.perf_counter()
        go.set()
        while await watcher.fetchval(UNSENT):  # until the last text is recorded as sent
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
        for proc in procs:  # they stop on their own (not timed)
            await asyncio.to_thread(proc.join)
        return n / elapsed
    finally:
        await watcher.close()
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join()


async def throughput(db: str, n: int) -> bool:
    raw_pool = await notifier_pool(db, "bench_notifier_bare")
    ours_pool = await notifier_pool(db, "bench_notifier_dispatch")
    try:
        await seed_due(raw_pool, n // 2)
        await seed_due(ours_pool, n // 2)
        bare = await bare_claim_loop(raw_pool, n)
        ours = await dispatcher_loop(db, "bench_notifier_dispatch", n)
    finally:
        await raw_pool.close()
        await ours_pool.close()
    ok = report(f"dispatch {n:,} due texts, zero-latency sender", [
        ("bare SQL claim loop (SKIP LOCKED, 2 connections)", bare),
        ("Dispatchers of 2 notifier processes (render, send, SID + SmsSent)", ours)],
        baseline="bare SQL claim loop (SKIP LOCKED, 2 connections)", target=0.3, unit="texts/s")
    absolute = ours >= 15_000
    print(f"   absolute target >= 15,000 texts/s: {'met' if absolute else 'NOT met'}")
    return ok and absolute


async def stream_lateness(db: str, schema: str, pending: int, stream: int,
                          per_second: float) -> list[float]:
    """Lateness of `stream` texts falling due at `per_second` while `pending` wait."""
    pool = await notifier_pool(db, schema)
    try:
        await seed_future(pool, pending)
        async with pool.acquire() as conn:
            plan = await conn.fetch("EXPLAIN " + Q.pick_due, CRITICAL_KINDS, BATCH)
            first_id = await conn.fetchval("SELECT coalesce(max(id), 0) + 1 FROM texts")
        if pending:
            used = [r[0].strip() for r in plan if "Index" in r[0]]
            print(f"   claim plan with {pending:,} pending: {used[0] if used else 'NO INDEX'}")
        await seed_due(pool, stream, ("day_of",), first_due_in=10.0, every=1 / per_second)
        task = asyncio.create_task(Dispatcher(pool, ZeroLatencySender(), batch_size=BATCH,
                                              quiet=ANY_HOUR).run())
        try:
            async def all_sent():
                async with pool.acquire() as conn:
                    return await conn.fetchval(
                        "SELECT count(*) = $2 FROM texts WHERE status = 'sent' AND id >= $1",
                        first_id, stream)
            while not await all_sent():
                await asyncio.sleep(0.5)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return await lateness(pool, first_id)
    finally:
        await pool.close()


async def lateness_with_backlog(db: str, pending: int, stream: int) -> bool:
    per_second = 1000.0
    empty = await stream_lateness(db, "bench_notifier_late_empty", 0, stream, per_second)
    full = await stream_lateness(db, "bench_notifier_late_full", pending, stream, per_second)
    print(f"\n== lateness of {stream:,} texts falling due at {per_second:,.0f}/s"
          f" (sent_at - due_at)")
    for name, values in ((f"{pending:,} future texts pending", full), ("nothing else pending", empty)):
        print(f"   {name:<46} p50 {percentile(values, 0.5):6.3f} s   p99 {percentile(values, 0.99):6.3f} s")
    p99, base = percentile(full, 0.99), percentile(empty, 0.99)
    print(f"   p99 ratio to the empty table: {p99 / base:.2f}x; target p99 <= 1 s: "
          f"{'met' if p99 <= 1.0 else 'NOT met'}")
    return p99 <= 1.0


async def main(texts: int, pending: int, stream: int) -> bool:
    with infrastructure() as (db, _kafka):
        ok = await throughput(db, texts)
        ok &= await lateness_with_backlog(db, pending, stream)
    return ok


def run(argv=None) -> bool:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--texts", type=int, default=100_000)
    parser.add_argument("--pending", type=int, default=1_000_000)
    parser.add_argument("--stream", type=int, default=20_000)
    args, _ = parser.parse_known_args(argv)
    return asyncio.run(main(args.texts, args.pending, args.stream))


if __name__ == "__main__":
    raise SystemExit(0 if run() else 1)
