"""What the audit trail costs booking: POST /bookings (each booking writes its entry in its own
statement) and a list read (GET /bookings, 50 a page: each read is kept in memory and written
in batches), at C concurrent clients.

One booking app in this process (reached through its ASGI interface, so that no HTTP server
or client is measured), its trail switched on and off between blocks of requests (no setting
does that: the benchmark flips `runtime.audit.enabled`), alternately, so that both sides see
the same machine, tables and caches; the median block of each side counts. Target: with the
trail at least 0.9x the rate without it (at most 10% slower).

Usage: python -m bench.audit_cost [--blocks N] [--clients C] [--per-block N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

import httpx

from bench.booking_throughput import ADMIN, booking_body, make_network
from bench.common import infrastructure, report
from services.booking.bootstrap import bootstrap
from services.booking.settings import BookingSettings

TARGET = 0.9


async def block(http: httpx.AsyncClient, net: dict, clients: int, per_block: int,
                made: list[int]) -> tuple[float, float]:
    """Bookings per second, then list reads per second, of one block."""
    async def booker(i: int) -> None:
        for _ in range(per_block):
            r = await http.post("/bookings", json=booking_body(net, i, made[i], 0))
            made[i] += 1
            assert r.status_code == 201, r.text

    async def reader() -> None:
        for _ in range(per_block):
            r = await http.get("/bookings", params={"limit": "50"})
            assert r.status_code == 200, r.text

    t0 = time.perf_counter()
    await asyncio.gather(*(booker(i) for i in range(clients)))
    t1 = time.perf_counter()
    await asyncio.gather(*(reader() for _ in range(clients)))
    t2 = time.perf_counter()
    n = clients * per_block
    return n / (t1 - t0), n / (t2 - t1)


async def main(blocks: int, clients: int, per_block: int) -> bool:
    rates: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    with infrastructure() as (db, kafka):
        settings = BookingSettings(database_url=db, kafka_bootstrap_servers=kafka,
                                   db_schema="bench_audit", admin_token=ADMIN, log_level="WARNING")
        app = bootstrap(settings)
        trail = app.state.runtime.audit
        await app.state.runtime.start()
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://booking", timeout=60) as http:
                net = await make_network(http, clients)
                made = [0] * clients
                await block(http, net, clients, 5, made)  # warm up
                for n in range(2 * blocks):
                    trail.enabled = n % 2 == 1
                    rates[trail.enabled].append(await block(http, net, clients, per_block, made))
                trail.enabled = True
        finally:
            await app.state.runtime.stop()
    off = [statistics.median(r[i] for r in rates[False]) for i in (0, 1)]
    on = [statistics.median(r[i] for r in rates[True]) for i in (0, 1)]
    title = f"{clients} concurrent clients, median of {blocks} blocks each, trail on and off alternately"
    ok = report(f"audit trail: POST /bookings, {title}", [
        ("without the audit trail", off[0]), ("with the audit trail", on[0])],
        baseline="without the audit trail", target=TARGET, unit="bookings/s")
    ok &= report(f"audit trail: GET /bookings?limit=50, {title}", [
        ("without the audit trail", off[1]), ("with the audit trail", on[1])],
        baseline="without the audit trail", target=TARGET, unit="reads/s")
    return ok


def run(argv=None) -> bool:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--per-block", type=int, default=20)
    args, _ = parser.parse_known_args(argv)
    return asyncio.run(main(args.blocks, args.clients, args.per_block))


if __name__ == "__main__":
    sys.exit(0 if run(sys.argv[1:]) else 1)
