"""`python -m bench.load [--size N] [--faults]`: `make load` and `make proof`.

Starts the whole stack as processes (two instances of each service, the broker, PostgreSQL
and the Twilio-compatible server), drives the load, optionally injects faults, waits for
the system to settle, checks the outcome from the databases and the recorded requests,
prints the figures and exits 1 on any violation. Every process it started is stopped,
on Ctrl-C and failures too.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
from collections import defaultdict
from datetime import UTC, datetime

import httpx

from bench.load import checks
from bench.load.collect import gather
from bench.load.driver import POISON, Driver, Options, Outcome, progress_bar, settle
from bench.load.faults import FaultInjector, FaultLog
from bench.load.resources import ResourceSampler
from devstack.embedded import free_port
from devstack.stack import ROOT, SERVICES, Stack

RSS_TARGET_MB = 250
CHECK_ORDER = ["lost", "duplicates", "unexplained sends", "cancelled booking", "stale time",
               "quiet hours", "after STOP", "plans", "outbox", "consumed", "dead letters"]


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=10_000, help="bookings (default 10,000)")
    p.add_argument("--faults", action="store_true", help="inject kill -9, broker pause, "
                   "PostgreSQL restart and Twilio errors while the load runs")
    p.add_argument("--kills", type=int, default=20, help="kill -9 of service processes (with --faults)")
    p.add_argument("--broker-pause", type=float, default=30.0, help="seconds the broker is paused")
    p.add_argument("--twilio-faults", type=float, default=60.0, help="seconds Twilio misbehaves")
    p.add_argument("--instances", type=int, default=2, help="processes per service")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--lead", type=float, default=300.0, help="seconds until the first day-of reminders")
    p.add_argument("--spread", type=float, default=600.0, help="seconds over which they fall due")
    p.add_argument("--settle-timeout", type=float, default=900.0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--keep", action="store_true", help="keep the data directory and logs")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    data_dir = ROOT / ".data" / "load" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    # the services' defaults, but for a sender fast enough for the load (a short code)
    env = {"NOTIFIER_TWILIO_SEGMENTS_PER_SECOND": "1000", "KAFKA_TOPIC_PREFIX": ""}
    backends = [s for s in SERVICES if s != "console"]  # the load drives the services' APIs
    stack = Stack(data_dir=data_dir, ports={s: free_port() for s in backends}, fsync=False,
                  env=env, quiet=True, instances={s: args.instances for s in backends}, twilio=True,
                  # when a consumer's batch committed: the moment a change was known (collect)
                  postgres_settings=("track_commit_timestamp=on",))
    opts = Options(size=args.size, concurrency=args.concurrency, lead=args.lead, spread=args.spread,
                   settle_timeout=args.settle_timeout, seed=args.seed, progress=not args.no_progress)
    ok = False
    print(f"load: {args.size:,} bookings, {args.instances} instance(s) per service"
          f"{', with faults' if args.faults else ''}; data and logs in {data_dir}", flush=True)
    try:
        with stack:
            ok = run(stack, opts, args)
    except KeyboardInterrupt:
        print("interrupted: everything started was stopped")
        return 130
    finally:
        if ok and not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0 if ok else 1


def run(stack: Stack, opts: Options, args: argparse.Namespace) -> bool:
    sampler = ResourceSampler(stack)
    faults = FaultLog()
    injector = None
    if args.faults:
        injector = FaultInjector(stack, kills=args.kills, broker_pause=args.broker_pause,
                                 twilio_faults=args.twilio_faults, seed=args.seed, log=faults)
    sampler.start()
    try:
        outcome, report, figures = asyncio.run(_run(stack, opts, injector))
    finally:
        sampler.stop.set()
        sampler.join()
        if injector is not None:
            injector.stop.set()
    print_report(args, outcome, report, figures, sampler, faults, injector)
    rss_ok = all(mb < RSS_TARGET_MB for label, mb, *_ in sampler.table()
                 if label.split("-")[0] in SERVICES)
    if not rss_ok:
        print(f"\nresource target NOT met: a service process went over {RSS_TARGET_MB} MB RSS")
    return report.ok and outcome.settled and (injector is None or injector.error is None)


async def _run(stack: Stack, opts: Options, injector: FaultInjector | None):
    driver = Driver(stack, opts)
    if injector is not None:
        driver.before_bookings = injector.start
    with progress_bar(opts.progress) as progress:
        outcome = await driver.run(progress)
        await settle(stack.env["DATABASE_URL"], outcome, progress, opts.settle_timeout,
                     until=outcome.last_due,
                     faults_done=(lambda: injector.done.is_set()) if injector else (lambda: True))
    async with httpx.AsyncClient(timeout=60) as http:
        recorded = (await http.get(f"{stack.twilio_server.url}/_fake/requests")).json()["requests"]
    facts = await gather(stack.env["DATABASE_URL"], stack.env["KAFKA_BOOTSTRAP_SERVERS"], recorded,
                         crashes=injector.log.crashes if injector else [],
                         settled_at=outcome.settled_at, poison=set(POISON),
                         stop_senders=outcome.stop_patients,
                         ride_confirmers=outcome.ride_confirmers)
    report = checks.check(facts)
    return outcome, report, figures(facts, outcome, recorded)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def figures(f: checks.Facts, out: Outcome, recorded: list[dict]) -> dict:
    """Throughput and latency (booking accepted -> first text accepted by Twilio)."""
    booking_of = {t.sid: t.booking_id for t in f.texts if t.sid}
    first: dict[str, float] = defaultdict(lambda: float("inf"))
    for s in f.sends:
        b = booking_of.get(s.sid)
        if b in out.accepted_at:
            first[b] = min(first[b], s.at.timestamp())
    latency = [first[b] - out.accepted_at[b] for b in first]
    due = {t.sid: t.due_at for t in f.texts if t.sid and t.due_at}
    late = [(s.at - due[s.sid]).total_seconds() for s in f.sends if s.sid in due]
    times = sorted(s.at.timestamp() for s in f.sends)
    refused = sum(1 for r in recorded if "refused" in r)
    return {
        "bookings/s": out.counts["booked"] / max(out.booking_seconds, 1e-9),
        "texts/s": len(times) / max(times[-1] - times[0], 1e-9) if len(times) > 1 else 0.0,
        "latency p50": _pct(latency, 0.50), "latency p99": _pct(latency, 0.99),
        "latency n": len(latency), "twilio refused": refused,
        "late p50": _pct(late, 0.50), "late p99": _pct(late, 0.99),
        "late max": max(late, default=float("nan")),
        "texts by status": dict(sorted(_count(t.status for t in f.texts).items())),
    }


def _count(items) -> dict:
    out: dict = defaultdict(int)
    for i in items:
        out[i] += 1
    return out


def print_report(args, out: Outcome, report: checks.Report, fig: dict, sampler: ResourceSampler,
                 faults: FaultLog, injector: FaultInjector | None) -> None:
    print("\n== load (machine: 2 cores shared with other work while measuring)")
    print(f"   bookings accepted        {out.counts['booked']:>8,} in {out.booking_seconds:6.1f} s"
          f"   {fig['bookings/s']:7.1f} bookings/s")
    for what, n in sorted(out.counts.items()):
        if what != "booked":
            print(f"   {what:<38} {n:>8,}")
    print(f"   staff actions and replies took {out.action_seconds:.1f} s")
    print(f"   texts accepted by Twilio {report.counts['accepted by Twilio']:>8,}"
          f"   {fig['texts/s']:7.1f} texts/s (first to last); Twilio refused {fig['twilio refused']:,} requests")
    print(f"   texts by status          {fig['texts by status']}")
    print(f"   booking accepted -> first text at Twilio: p50 {fig['latency p50']:.2f} s, "
          f"p99 {fig['latency p99']:.2f} s over {fig['latency n']:,} bookings")
    print(f"   text due -> Twilio: p50 {fig['late p50']:.2f} s, p99 {fig['late p99']:.2f} s, "
          f"max {fig['late max']:.2f} s (held by quiet hours or retried: due again later)")
    print(f"   settled: {'yes' if out.settled else 'NO (timed out)'} at {out.settled_at:%H:%M:%S} UTC")
    if injector is not None:
        print(f"\n== faults: {faults.kills} kill -9, "
              f"{sum(1 for _, w in faults.events if w.startswith('broker paused'))} broker pause, "
              f"{sum(1 for _, w in faults.events if w == 'PostgreSQL restarted')} PostgreSQL restart")
        for at, what in faults.events:
            print(f"   {at:%H:%M:%S} {what}")
        if injector.error:
            print(f"   fault injection FAILED: {injector.error!r}")
    print("\n== resources (peak RSS, CPU time, average CPU of one core over the run)")
    for label, mb, cpu, pct in sampler.table():
        mark = "" if label.split("-")[0] not in SERVICES else (
            "" if mb < RSS_TARGET_MB else f"  over the {RSS_TARGET_MB} MB target")
        print(f"   {label:<12} {mb:7.1f} MB  {cpu:7.1f} s CPU  {pct:5.1f} %{mark}")
    print("\n== checks")
    for name, n in sorted(report.counts.items()):
        print(f"   {name:<52} {n:>8,}")
    for name in CHECK_ORDER + sorted(set(report.violations) - set(CHECK_ORDER)):
        found = report.violations.get(name, [])
        print(f"   {'FAIL' if found else 'ok  '} {name}" + (f": {len(found)}" if found else ""))
        for detail in found[:5]:
            print(f"        {detail}")
    print("\nproof " + ("PASSED" if report.ok and out.settled else "FAILED"))


if __name__ == "__main__":
    sys.exit(main())
