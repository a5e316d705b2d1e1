"""What the audit trail costs booking: POST /bookings (each change writes its entry in its own
transaction) and a list read (GET /bookings, 50 a page: each read is kept in memory and
written in batches), at C concurrent clients, through the real HTTP service (its own process,
one worker), with the trail and with it switched off in that process (no such setting
exists: `--serve-unaudited` is this benchmark's own way to run the service without it).
Each side runs twice, alternately; the better run of each counts. Target: with the trail at
least 0.9x the rate without it (at most 10% slower).

Usage: python -m bench.audit_cost [--bookings N] [--reads N] [--clients C]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time

import aiohttp
import httpx

from bench.booking_throughput import http_bookings, make_network, percentile, start_service
from bench.common import infrastructure, report

TARGET = 0.9


async def start(db: str, kafka: str, schema: str, audited: bool) -> tuple[subprocess.Popen, str]:
    command = ("-m", "services.booking") if audited else ("-m", "bench.audit_cost", "--serve-unaudited")
    return await start_service(db, kafka, schema, 1, command)


async def list_reads(url: str, key: str, clients: int, total: int) -> tuple[float, list[float]]:
    """`clients` concurrent clients reading GET /bookings?limit=50 until `total` reads."""
    latencies: list[float] = []
    per_client = max(1, total // clients)
    async with aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(limit=clients),
                                     headers={"X-API-Key": key}) as http:
        async def client() -> None:
            for _ in range(per_client):
                t = time.perf_counter()
                async with http.get("/bookings", params={"limit": "50"}) as r:
                    await r.read()
                latencies.append(time.perf_counter() - t)
                assert r.status == 200
        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - t0
    return clients * per_client / elapsed, latencies


async def one_side(db: str, kafka: str, schema: str, audited: bool, bookings: int, reads: int,
                   clients: int) -> tuple[float, float, list[float], list[float]]:
    proc, url = await start(db, kafka, schema, audited)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            net = await make_network(http, clients)
        await http_bookings(url, net, clients, 2, offset_days=400)  # warm up
        write_rate, write_lat = await http_bookings(url, net, clients, max(1, bookings // clients))
        read_rate, read_lat = await list_reads(url, net["clinic"]["api_key"], clients, reads)
        return write_rate, read_rate, write_lat, read_lat
    finally:
        proc.terminate()
        proc.wait(30)


async def main(bookings: int, reads: int, clients: int) -> bool:
    best: dict[bool, tuple] = {}
    with infrastructure() as (db, kafka):
        for round_ in range(2):
            for audited in (False, True):
                result = await one_side(db, kafka, f"bench_audit_{int(audited)}_{round_}", audited,
                                        bookings, reads, clients)
                if audited not in best or result[0] + result[1] > best[audited][0] + best[audited][1]:
                    best[audited] = result
    off, on = best[False], best[True]
    ok = report(f"audit trail: POST /bookings, {clients} concurrent clients, one worker", [
        ("without the audit trail", off[0]), ("with the audit trail", on[0])],
        baseline="without the audit trail", target=TARGET, unit="bookings/s")
    ok &= report(f"audit trail: GET /bookings?limit=50, {clients} concurrent clients, one worker", [
        ("without the audit trail", off[1]), ("with the audit trail", on[1])],
        baseline="without the audit trail", target=TARGET, unit="reads/s")
    for name, index in (("POST /bookings", 2), ("GET /bookings", 3)):
        print(f"   {name} p50 / p99 ms: without {percentile(off[index], 50) * 1000:.1f} / "
              f"{percentile(off[index], 99) * 1000:.1f}, with {percentile(on[index], 50) * 1000:.1f}"
              f" / {percentile(on[index], 99) * 1000:.1f}")
    return ok


def serve_unaudited() -> None:
    """The booking service as `python -m services.booking` runs it, its audit trail off."""
    from services.booking.bootstrap import bootstrap
    from services.booking.settings import BookingSettings
    from shared.serve import serve

    def unaudited(settings):
        app = bootstrap(settings)
        app.state.runtime.audit.enabled = False
        return app
    serve(unaudited, BookingSettings())


def run(argv=None) -> bool:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bookings", type=int, default=1600)
    parser.add_argument("--reads", type=int, default=3200)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--serve-unaudited", action="store_true", help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args(argv)
    if args.serve_unaudited:
        serve_unaudited()
        return True
    return asyncio.run(main(args.bookings, args.reads, args.clients))


if __name__ == "__main__":
    sys.exit(0 if run(sys.argv[1:]) else 1)
