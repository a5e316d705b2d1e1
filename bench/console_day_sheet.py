"""The console's day sheet of a site with 300 sessions (20 rooms, 300 patients with their
texts): its response time, one request after another, through the whole system running as
processes (booking, plans, notifier, console); target p99 <= 100 ms. Baseline in the same
run: the two calls the page makes (booking's sheet and the notifier's texts of the day),
made directly, together, with the same person's token: what the console adds is the ratio.

Usage: python -m bench.console_day_sheet [--requests N]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

from bench.common import infrastructure, judge
from devstack.embedded import free_port
from devstack.stack import Stack

TZ = "America/Vancouver"
ALL_DAY = [{"weekday": d, "opens": "00:00", "closes": "23:59"} for d in range(1, 8)]
ROOMS, PER_ROOM = 20, 15
PASSWORD = "bench password 1234"


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def build_network(stack: Stack) -> dict:
    """A site with 300 assessment sessions tomorrow, and a scheduler who can sign in."""
    with httpx.Client(base_url=stack.url("booking"), timeout=30) as http:
        clinic = http.post("/clinics", json={"name": "Bench", "phone": "+1 604 555 0100"},
                           headers={"X-Admin-Token": stack.admin_token}).raise_for_status().json()
        http.headers["X-API-Key"] = clinic["api_key"]
        site = http.post("/sites", json={"name": "Main", "address": "1 Main St", "phone": "+1 604 555 0101",
                                         "timezone": TZ, "hours": ALL_DAY}).raise_for_status().json()
        for i in range(ROOMS):
            http.post("/rooms", json={"site_id": site["id"], "name": f"Room {i + 1:02d}"}).raise_for_status()
            http.post("/providers", json={"name": f"Provider {i + 1:02d}", "hours": [
                {**h, "site_id": site["id"]} for h in ALL_DAY]}).raise_for_status()
        day = (datetime.now(ZoneInfo(TZ)) + timedelta(days=1)).date()
        for i in range(ROOMS * PER_ROOM):
            patient = http.post("/patients", json={
                "given_name": f"Pat{i}", "family_name": "Bench", "phone": f"604-555-{i + 1000:04d}",
                "sms_consent": True}).raise_for_status().json()
            start = datetime(day.year, day.month, day.day, 7 + i // ROOMS)
            http.post("/bookings", json={"patient_id": patient["id"], "site_id": site["id"],
                                         "session_type": "assessment",
                                         "starts_at": start.isoformat()}).raise_for_status()
        person = http.post("/staff", json={"name": "Bench Scheduler", "email": "bench@clinic.example",
                                           "role": "scheduler"}).raise_for_status().json()
        code = person["enrolment_code"]
        http.post("/auth/enrolment", json={"code": code}).raise_for_status()
        http.post("/auth/enrolment/complete", json={"code": code, "password": PASSWORD}).raise_for_status()
    return {"site": site, "day": day}


async def timed(n: int, request) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        await request()
        times.append((time.perf_counter() - started) * 1000)
    return times


async def measure(stack: Stack, net: dict, n: int) -> dict:
    site, day = net["site"]["id"], net["day"].isoformat()
    async with httpx.AsyncClient(base_url=stack.url("console"), timeout=30) as browser:
        page = await browser.get("/sign-in")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        assert (await browser.post("/sign-in", data={"csrf": csrf, "email": "bench@clinic.example",
                                                     "password": PASSWORD})).status_code == 303
        signed = await httpx.AsyncClient().post(f"{stack.url('booking')}/auth/sign-in", json={
            "email": "bench@clinic.example", "password": PASSWORD})
        token = signed.json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(timeout=30) as direct:
            async def texts_ready():
                r = await direct.get(f"{stack.url('notifier')}/sites/{site}/texts", params={"from": day},
                                     headers=auth)
                return r.status_code == 200 and len(r.json()) >= ROOMS * PER_ROOM
            for _ in range(600):
                if await texts_ready():
                    break
                await asyncio.sleep(0.2)

            async def sheet():
                r = await browser.get("/day", params={"site": site, "date": day})
                assert r.status_code == 200 and r.text.count("data-booking=") == ROOMS * PER_ROOM
                return r

            async def baseline():
                await asyncio.gather(
                    direct.get(f"{stack.url('booking')}/sites/{site}/sheet", params={"from": day}, headers=auth),
                    direct.get(f"{stack.url('notifier')}/sites/{site}/texts", params={"from": day}, headers=auth))

            first = await sheet()
            await timed(20, sheet)
            await timed(20, baseline)
            console_ms = await timed(n, sheet)
            baseline_ms = await timed(n, baseline)
    return {"console": console_ms, "baseline": baseline_ms,
            "calls": int(first.headers["x-console-service-calls"]), "bytes": len(first.content)}


def run(argv: list[str] | None = None) -> bool:
    parser = argparse.ArgumentParser(prog="bench.console_day_sheet")
    parser.add_argument("--requests", type=int, default=300)
    args, _ = parser.parse_known_args(argv)
    names = ("booking", "plans", "notifier", "console")
    with infrastructure() as (db, kafka), tempfile.TemporaryDirectory(prefix="kcb-bench-console-") as tmp:
        env = {"DATABASE_URL": db, "KAFKA_BOOTSTRAP_SERVERS": kafka, "LOG_LEVEL": "WARNING",
               "NOTIFIER_QUIET_HOURS_START": "24", "NOTIFIER_QUIET_HOURS_END": "0"}
        with Stack(data_dir=Path(tmp), ports={n: free_port() for n in names}, env=env, quiet=True) as stack:
            net = build_network(stack)
            out = asyncio.run(measure(stack, net, args.requests))
    c, b = out["console"], out["baseline"]
    print(f"\n== console day sheet, {ROOMS * PER_ROOM} sessions, {args.requests} requests one after another")
    print(f"   page: {out['calls']} calls to the services, {out['bytes']:,} bytes of HTML")
    rows = [("console GET /day (2 calls + render)", c), ("baseline: the 2 calls alone, together", b)]
    for name, values in rows:
        print(
            f"   {name:<42} p50 {percentile(values, 50):6.1f} ms  p99 {percentile(values, 99):6.1f} ms"
            f"  ({percentile(values, 50) / percentile(b, 50):.2f}x"
            f" / {percentile(values, 99) / percentile(b, 99):.2f}x baseline)"
        )
    met = judge("console day sheet p99", percentile(c, 99), 100, "ms", at_most=True)
    met &= judge("console day sheet calls", out["calls"], 3, "calls", at_most=True)
    print(f"   target p99 <= 100 ms and <= 3 calls: {'met' if met else 'NOT met'}")
    return met


if __name__ == "__main__":
    raise SystemExit(0 if run() else 1)
