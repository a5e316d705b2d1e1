"""Booking throughput and latency at 64 concurrent clients, through the real HTTP service
(its own process), against raw asyncpg inserts of the same rows (booking + outbox event) at
the same concurrency; and free-slot search latency for one site and a week with 10,000
existing bookings.

Latency is judged open loop: bookings offered at half the raw insert's measured rate over
64 connections, whatever the answers take; p99 <= 50 ms, the median of 3 rounds. The load
generator (this process) does not collect garbage while a phase is timed
(`steady_load_generator`): its pauses would count as the service's latency. The
closed loop's latency (64 clients each waiting for its answer) is printed, not judged: by
Little's law it is 64 / the rate, the raw insert's own latency at best.

Usage: python -m bench.booking_throughput [--bookings N] [--clients C] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import httpx

from bench.common import ROUNDS, infrastructure, judge, median, report, steady_load_generator
from devstack.embedded import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
ADMIN = "bench-operator"
TZ = "America/Vancouver"
ALL_DAY = [{"weekday": d, "opens": "00:00", "closes": "23:59"} for d in range(1, 8)]


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


async def start_service(db: str, kafka: str, schema: str, workers: int = 1, *, root: Path = ROOT,
                        env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """The booking service as its own process, from the tree at `root`, with `env` added to
    its environment; returns it and its URL once it is ready."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db, "KAFKA_BOOTSTRAP_SERVERS": kafka,
           "BOOKING_HTTP_PORT": str(port), "BOOKING_ADMIN_TOKEN": ADMIN,
           "BOOKING_DB_SCHEMA": schema, "LOG_LEVEL": "WARNING", "BOOKING_DB_POOL_SIZE": "20",
           "BOOKING_HTTP_WORKERS": str(workers), **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "services.booking"], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    await asyncio.to_thread(wait_for_port, "127.0.0.1", port, 60, proc)
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as http:
        for _ in range(300):
            if (await http.get(f"{url}/ready")).status_code == 200:
                break
            await asyncio.sleep(0.2)
    return proc, url


async def make_network(http: httpx.AsyncClient, clients: int) -> dict:
    clinic = (await http.post("/clinics", json={"name": "Bench", "phone": "+1 604 555 0100"},
                              headers={"X-Admin-Token": ADMIN})).json()
    http.headers["X-API-Key"] = clinic["api_key"]
    site = (await http.post("/sites", json={"name": "Bench", "address": "1 Main", "phone": "+1 604 555 0101",
                                            "timezone": TZ, "hours": ALL_DAY})).json()
    rooms, providers, patients = [], [], []
    for i in range(clients):
        rooms.append((await http.post("/rooms", json={"site_id": site["id"], "name": f"R{i}"})).json()["id"])
        providers.append((await http.post("/providers", json={
            "name": f"P{i}", "hours": [{**h, "site_id": site["id"]} for h in ALL_DAY]})).json()["id"])
        patients.append((await http.post("/patients", json={
            "given_name": "B", "family_name": f"{i}", "phone": f"604555{i % 10000:04d}",
            "sms_consent": True})).json()["id"])
    return {"clinic": clinic, "site": site, "rooms": rooms, "providers": providers, "patients": patients}


def start_time(client: int, n: int) -> datetime:
    """Client `client`'s n-th session: ten a day, 2 hours apart from 01:00 site time, from
    the day after tomorrow (each client has its own room, provider and patient). Not from
    midnight: the tracing benchmark's baseline, older code, reads Vancouver's winter an hour
    behind (the machine's time zone rules), and would take 00:00 for 23:00 the day before."""
    first = datetime.now(ZoneInfo(TZ)).date() + timedelta(days=2 + n // 10)
    return datetime.combine(first, dtime(1 + 2 * (n % 10)), ZoneInfo(TZ))


def booking_body(net: dict, client: int, n: int, offset_days: int) -> dict:
    """The POST /bookings body of client `client`'s n-th session (its own room, provider and
    patient, so clients never conflict)."""
    return {"patient_id": net["patients"][client], "site_id": net["site"]["id"],
            "room_id": net["rooms"][client], "provider_id": net["providers"][client],
            "session_type": "assessment",
            "starts_at": (start_time(client, n) + timedelta(days=offset_days)).isoformat()}


async def http_bookings(url: str, net: dict, clients: int, per_client: int,
                        offset_days: int = 0) -> tuple[float, list[float]]:
    """`clients` concurrent clients, each booking `per_client` sessions one after another.
    (aiohttp as the load generator: httpx's pool tops out near 200 requests/s here.)"""
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(url, connector=connector,
                                     headers={"X-API-Key": net["clinic"]["api_key"]}) as http:
        async def client(i: int) -> None:
            for n in range(per_client):
                body = booking_body(net, i, n, offset_days)
                t = time.perf_counter()
                async with http.post("/bookings", json=body) as r:
                    text = await r.text()
                latencies.append(time.perf_counter() - t)
                assert r.status == 201, text
        t0 = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(clients)))
        elapsed = time.perf_counter() - t0
    return clients * per_client / elapsed, latencies


async def paced_bookings(url: str, net: dict, clients: int, rate: float, total: int,
                         offset_days: int) -> list[float]:
    """Open loop: `total` bookings started at a steady `rate` per second over `clients`
    connections whatever the answers take (a clinic network's requests do not wait for
    each other), for the latency at a load the service sustains."""
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(url, connector=connector,
                                     headers={"X-API-Key": net["clinic"]["api_key"]}) as http:
        async def one(k: int) -> None:
            i, n = k % clients, k // clients
            body = booking_body(net, i, n, offset_days)
            t = time.perf_counter()
            async with http.post("/bookings", json=body) as r:
                text = await r.text()
            latencies.append(time.perf_counter() - t)
            assert r.status == 201, text

        t0, tasks = time.perf_counter(), []
        for k in range(total):
            await asyncio.sleep(max(0.0, t0 + k / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(k)))
        await asyncio.gather(*tasks)
    return latencies


async def raw_inserts(db: str, schema: str, net: dict, clients: int, per_client: int,
                      offset_days: int) -> tuple[float, list[float]]:
    pool = await asyncpg.create_pool(db, min_size=20, max_size=20, server_settings={"search_path": schema})
    latencies: list[float] = []
    payload = b'{"event_type":"SessionBooked"}' * 20
    clinic, site = net["clinic"]["id"], net["site"]["id"]

    async def client(i: int) -> None:
        for n in range(per_client):
            start = start_time(i, n) + timedelta(days=offset_days)
            t = time.perf_counter()
            async with pool.acquire() as conn, conn.transaction():
                bid = uuid.uuid4()
                await conn.execute(
                    "INSERT INTO bookings (id, clinic_id, site_id, room_id, provider_id, patient_id,"
                    " session_type, is_dosing, starts_at, ends_at, occupied_until)"
                    " VALUES ($1,$2,$3,$4,$5,$6,'assessment',false,$7,$8,$8)",
                    bid, clinic, site, net["rooms"][i], net["providers"][i], net["patients"][i],
                    start, start + timedelta(hours=1))
                await conn.execute(
                    "INSERT INTO outbox (topic, key, value, event_id, event_type)"
                    " VALUES ('booking.events', $1, $2, $3, 'SessionBooked')",
                    net["patients"][i].encode(), payload, uuid.uuid4())
            latencies.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.perf_counter() - t0
    await pool.close()
    return clients * per_client / elapsed, latencies


async def fill(db: str, schema: str, net: dict, total: int, weeks: int) -> None:
    """`total` existing bookings at the site, spread over `weeks` from 400 days ahead (raw
    COPY, for speed): hourly sessions in every room, round the clock."""
    conn = await asyncpg.connect(db, server_settings={"search_path": schema})
    try:
        base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=400)
        hours = weeks * 7 * 24
        rooms = len(net["rooms"])
        rows = []
        for n in range(total):
            slot = base + timedelta(hours=(n // rooms) * hours // max(1, total // rooms))
            i = n % rooms
            rows.append((uuid.uuid4(), net["clinic"]["id"], net["site"]["id"], net["rooms"][i],
                         net["providers"][i], net["patients"][i], "assessment", False,
                         slot, slot + timedelta(minutes=60), slot + timedelta(minutes=60)))
        await conn.copy_records_to_table("bookings", records=rows, columns=[
            "id", "clinic_id", "site_id", "room_id", "provider_id", "patient_id", "session_type",
            "is_dosing", "starts_at", "ends_at", "occupied_until"])
        await conn.execute("ANALYZE bookings")
    finally:
        await conn.close()


async def slot_search(url: str, net: dict, queries: int) -> list[float]:
    first = (datetime.now(UTC) + timedelta(days=400)).date()
    params = {"session_type": "iv_infusion", "from": first.isoformat(),
              "to": (first + timedelta(days=6)).isoformat()}
    latencies = []
    async with aiohttp.ClientSession(url, headers={"X-API-Key": net["clinic"]["api_key"]}) as http:
        for _ in range(queries):
            t = time.perf_counter()
            async with http.get(f"/sites/{net['site']['id']}/availability", params=params) as r:
                await r.read()
            latencies.append(time.perf_counter() - t)
            assert r.status == 200
    return latencies


@dataclass
class Round:
    """One round's figures: rates in bookings/s, latencies in seconds."""

    raw_rate: float
    raw_lat: list[float]
    closed_rate: float
    closed_lat: list[float]
    offered: float
    open_lat: list[float]


async def booking_round(db: str, url: str, net: dict, clients: int, per_client: int,
                        r: int) -> Round:
    """Round `r`: the raw insert's rate, then the service closed-loop at `clients` clients,
    then open-loop at half the raw insert's rate over `clients` connections (each phase
    books days of its own)."""
    with steady_load_generator():
        raw_rate, raw_lat = await raw_inserts(db, "bench_booking", net, clients, per_client,
                                              200 + 10 * r)
    with steady_load_generator():
        closed_rate, closed_lat = await http_bookings(url, net, clients, per_client, 10 * r)
    offered = raw_rate / 2
    with steady_load_generator():
        open_lat = await paced_bookings(url, net, clients, offered,
                                        min(2000, round(20 * offered)), 100 + 10 * r)
    return Round(raw_rate, raw_lat, closed_rate, closed_lat, offered, open_lat)


def ms(values: list[float], p: float) -> float:
    return percentile(values, p) * 1000


async def main(total: int, clients: int, workers: int, rounds: int = ROUNDS) -> bool:
    per_client = max(1, total // clients)
    with infrastructure() as (db, kafka):
        proc, url = await start_service(db, kafka, "bench_booking", workers)
        try:
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                net = await make_network(http, clients)
            done = [await booking_round(db, url, net, clients, per_client, r)
                    for r in range(rounds)]
            await fill(db, "bench_booking", net, 10_000, weeks=10)
            spread_lat = await slot_search(url, net, 200)
        finally:
            proc.terminate()
            proc.wait(15)
        # worst case: all 10,000 bookings inside the week searched
        proc, url = await start_service(db, kafka, "bench_dense", workers)
        try:
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                dense_net = await make_network(http, clients)
            await fill(db, "bench_dense", dense_net, 10_000, weeks=1)
            dense_lat = await slot_search(url, dense_net, 100)
        finally:
            proc.terminate()
            proc.wait(15)
    raw_name = "raw asyncpg insert (booking + outbox)"
    ok = report(f"book {clients * per_client:,} sessions, {clients} concurrent clients, "
                f"service with {workers} worker process(es), median of {rounds} rounds", [
        (raw_name, median([d.raw_rate for d in done])),
        ("POST /bookings (HTTP, all checks)", median([d.closed_rate for d in done]))],
        baseline=raw_name, target=0.5, unit="bookings/s")
    for d in done:
        print(f"   round: raw {d.raw_rate:,.0f}/s p99 {ms(d.raw_lat, 99):.1f} ms; closed loop "
              f"{d.closed_rate:,.0f}/s p99 {ms(d.closed_lat, 99):.1f} ms; open loop at "
              f"{d.offered:,.0f}/s p99 {ms(d.open_lat, 99):.1f} ms")
    print(f"   closed loop, {clients} clients each waiting for its answer (printed, not judged: by "
          f"Little's law its mean latency is {clients} / the rate): p50 "
          f"{median([ms(d.closed_lat, 50) for d in done]):.1f} ms, p99 "
          f"{median([ms(d.closed_lat, 99) for d in done]):.1f} ms; raw insert p50 "
          f"{median([ms(d.raw_lat, 50) for d in done]):.1f} ms, p99 "
          f"{median([ms(d.raw_lat, 99) for d in done]):.1f} ms")
    open_p99 = median([ms(d.open_lat, 99) for d in done])
    held = judge(f"booking p99, open loop at half the raw insert's rate over {clients} "
                 "connections", open_p99, 50, "ms", at_most=True)
    print(f"   open loop at half the raw insert's rate ({median([d.offered for d in done]):,.0f} "
          f"bookings/s offered over {clients} connections): p50 "
          f"{median([ms(d.open_lat, 50) for d in done]):.1f} ms, p99 {open_p99:.1f} ms "
          f"(target p99 <= 50 ms: {'met' if held else 'NOT met'})")
    s50, s99 = percentile(spread_lat, 50) * 1000, percentile(spread_lat, 99) * 1000
    searched = judge("free-slot search p99", s99, 50, "ms", at_most=True)
    print(f"   free-slot search, one site, 7 days, 10,000 bookings over 10 weeks: p50 {s50:.1f} ms,"
          f" p99 {s99:.1f} ms (target p99 <= 50 ms: {'met' if searched else 'NOT met'})")
    d50, d99 = percentile(dense_lat, 50) * 1000, percentile(dense_lat, 99) * 1000
    print(f"   free-slot search, worst case, all 10,000 bookings in the week searched: "
          f"p50 {d50:.1f} ms, p99 {d99:.1f} ms")
    return ok and held and searched


def run(argv=None) -> bool:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bookings", type=int, default=3200)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args, _ = parser.parse_known_args(argv)
    return asyncio.run(main(args.bookings, args.clients, args.workers, args.rounds))


if __name__ == "__main__":
    raise SystemExit(0 if run() else 1)
