"""What tracing costs: booking POSTs (the service as its own process, 32 concurrent clients)
and the notifier's dispatcher (one instance, a sender that answers at once), each three ways
in the same run, rounds alternating them (medians):

- baseline: the code before tracing was added (the commit before `shared/tracing.py`, or
  `BENCH_TRACING_BASELINE=<commit>`, unpacked with `git archive`): no tracing code path;
- tracing off (the default: `OTEL_SDK_DISABLED` unset): this code;
- tracing on (`OTEL_SDK_DISABLED=false`): every span made and exported over OTLP/HTTP to a
  local sink that takes them (the texts each in a trace of their own, as tracing on writes
  them).

Without git or the baseline commit, off and on are compared alone.

Usage: python -m bench.tracing_cost [--bookings N] [--clients C] [--texts N] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OFF = {"OTEL_SDK_DISABLED": "true"}
TRACED_TEXTS = ("UPDATE texts SET trace_context = '00-' || md5('trace' || id) || '-'"
                " || left(md5('span' || id), 16) || '-01'")
"""Each text in a trace of its own, as the notifier's consumer writes them while tracing."""


def baseline_tree(into: Path) -> Path | None:
    """The code before tracing, unpacked into `into`; None without git or that commit."""
    commit = os.environ.get("BENCH_TRACING_BASELINE")
    try:
        if not commit:
            added = subprocess.run(
                ["git", "-C", str(ROOT), "log", "--diff-filter=A", "--format=%H", "--",
                 "shared/tracing.py"], capture_output=True, text=True, check=True).stdout.split()
            if not added:
                return None
            commit = added[-1] + "^"
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit],
                                 capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    with tempfile.TemporaryFile() as f:
        f.write(archive)
        f.seek(0)
        with tarfile.open(fileobj=f) as tar:
            tar.extractall(into, filter="data")
    return into


@contextlib.asynccontextmanager
async def otlp_sink():
    """A local OTLP/HTTP endpoint that takes every export (as a collector would); yields its
    URL and a dict counting the requests and bytes."""
    from aiohttp import web

    from devstack.embedded import free_port

    taken = {"requests": 0, "bytes": 0}

    async def traces(request: web.Request) -> web.Response:
        taken["requests"] += 1
        taken["bytes"] += len(await request.read())
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", taken
    finally:
        await runner.cleanup()


def tracing_env(sink: str, service: str) -> dict[str, str]:
    return {"OTEL_SDK_DISABLED": "false", "OTEL_SERVICE_NAME": service,
            "OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": sink,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}


async def bookings(db: str, kafka: str, schema: str, tree: Path, env: dict[str, str],
                   clients: int, per_client: int) -> tuple[float, list[float]]:
    """Bookings/s and latencies of POST /bookings against the service of `tree`, after a
    warm-up of one booking per client."""
    import httpx

    from bench.booking_throughput import http_bookings, make_network, start_service

    proc, url = await start_service(db, kafka, schema, 1, root=tree,
                                    env={**env, "PYTHONPATH": str(tree)})
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            net = await make_network(http, clients)
        await http_bookings(url, net, clients, 1, offset_days=300)
        return await http_bookings(url, net, clients, per_client)
    finally:
        proc.terminate()
        proc.wait(15)


async def dispatch(db: str, schema: str, tree: Path, env: dict[str, str], texts: int) -> float:
    """Texts/s of one dispatcher of `tree`'s code (its own process: `dispatch_worker`)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).resolve()), "dispatch", db, schema, str(texts),
        cwd=tree, env={**os.environ, **env, "PYTHONPATH": str(tree), "LOG_LEVEL": "WARNING"},
        stdout=subprocess.PIPE)
    out, _ = await proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"the dispatcher of {tree} failed; its error is above")
    return json.loads(out.decode().strip().splitlines()[-1])["texts_per_second"]


async def dispatch_worker(db: str, schema: str, texts: int) -> float:
    """In the tree the process runs from: `texts` due texts seeded on a fresh schema, then one
    dispatcher sends them all; texts/s from its start until the last one is recorded. (It
    runs the dispatcher as `bench.notifier_dispatch` does, by hand: it may only use what the
    baseline's bench modules had.)"""
    from bench.notifier_common import ANY_HOUR, ZeroLatencySender, notifier_pool, seed_due
    from bench.notifier_dispatch import BATCH, UNSENT
    from services.notifier.dispatcher import Dispatcher

    pool = await notifier_pool(db, schema)
    try:
        await seed_due(pool, texts // 2)
        if os.environ.get("OTEL_SDK_DISABLED") == "false":
            from shared.tracing import configure_from_env
            await pool.execute(TRACED_TEXTS)
            configure_from_env("notifier")
        await pool.execute("CHECKPOINT")
        gc.freeze()
        started = time.perf_counter()
        task = asyncio.create_task(Dispatcher(pool, ZeroLatencySender(), batch_size=BATCH,
                                              quiet=ANY_HOUR, poll_seconds=0.05).run())
        try:
            async with pool.acquire() as conn:
                while await conn.fetchval(UNSENT):
                    await asyncio.sleep(0.01)
            return texts / (time.perf_counter() - started)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        await pool.close()


async def main(total: int, clients: int, texts: int, rounds: int) -> bool:
    from bench.booking_throughput import percentile
    from bench.common import infrastructure

    per_client = max(1, total // clients)
    with tempfile.TemporaryDirectory(prefix="kcb-baseline-") as tmp, \
            infrastructure() as (db, kafka):
        base = baseline_tree(Path(tmp))
        async with otlp_sink() as (sink, taken):
            ways = ([("baseline", base, OFF)] if base else []) + [
                ("off", ROOT, OFF), ("on", ROOT, tracing_env(sink, "booking"))]
            rates: dict[str, list[float]] = {w: [] for w, _, _ in ways}
            latencies: dict[str, list[float]] = {w: [] for w, _, _ in ways}
            sent: dict[str, list[float]] = {w: [] for w, _, _ in ways}
            for n in range(rounds):  # each round in another order: no way always goes first
                for way, tree, env in ways[n % len(ways):] + ways[:n % len(ways)]:
                    rate, lat = await bookings(db, kafka, f"bench_trace_{way}_{n}", tree, env,
                                               clients, per_client)
                    rates[way].append(rate)
                    latencies[way] += lat
                    sent[way].append(await dispatch(
                        db, f"bench_trace_texts_{way}_{n}", tree,
                        {**env, "OTEL_SERVICE_NAME": "notifier"} if way == "on" else env, texts))
    ok = _report(f"POST /bookings, {clients * per_client:,} bookings, {clients} concurrent "
                 f"clients, {rounds} rounds", rates, "bookings/s")
    for way, lat in latencies.items():
        print(f"   {way:<8} latency p50 {percentile(lat, 50) * 1000:.1f} ms, "
              f"p99 {percentile(lat, 99) * 1000:.1f} ms")
    ok &= _report(f"dispatcher, {texts:,} due texts, one instance, zero-latency sender, "
                  f"{rounds} rounds", sent, "texts/s")
    print(f"   spans taken by the local OTLP sink: {taken['requests']:,} exports, "
          f"{taken['bytes'] / 1e6:,.1f} MB")
    hooks()
    return ok


def _report(title: str, runs: dict[str, list[float]], unit: str) -> bool:
    """Each way's median, its rounds' range, and the ratios; whether tracing off is within
    the baseline's spread: its best round at least the baseline's worst (no cost measurable)."""
    print(f"\n== tracing cost: {title} (median, rounds' range)")
    med = {w: statistics.median(v) for w, v in runs.items()}
    first = "baseline" if "baseline" in med else "off"
    for way, rate in med.items():
        spread = f"{min(runs[way]):,.0f}-{max(runs[way]):,.0f}"
        print(f"   {_LABELS[way]:<42} {rate:>8,.0f} {unit} ({spread:>13})  "
              f"{rate / med[first]:5.2f}x {first}"
              + (f"  {rate / med['off']:5.2f}x off" if way == "on" else ""))
    if first != "baseline":
        print("   (no baseline: git or the commit before tracing is not here)")
        return True
    met = max(runs["off"]) >= min(runs["baseline"])
    print(f"   tracing off vs the code before tracing: {med['off'] / med['baseline']:.2f}x; "
          f"target: within the baseline's spread ({'met' if met else 'NOT met'})")
    return met


def hooks(n: int = 1_000_000) -> None:
    """What the code's tracing hooks cost while off, each call, in this process: the figure
    runs cannot resolve (a booking passes about ten of them, from the request to its texts'
    receipts; a text two)."""
    import timeit
    from contextlib import nullcontext

    from shared import tracing

    if tracing.enabled():
        return
    costs = {"enabled()": timeit.timeit(tracing.enabled, number=n) / n,
             "context_of(event id)": timeit.timeit(lambda: tracing.context_of(None), number=n) / n,
             "with current(None)": timeit.timeit(_with(tracing.current(None)), number=n) / n,
             "(a bare `with nullcontext()`)": timeit.timeit(_with(nullcontext()), number=n) / n}
    print("   tracing's hooks while off, per call: " + ", ".join(
        f"{name} {seconds * 1e9:.0f} ns" for name, seconds in costs.items()))


def _with(manager):
    def run() -> None:
        with manager:
            pass
    return run


_LABELS = {"baseline": "baseline: the code before tracing",
           "off": "tracing off (default)", "on": "tracing on (OTLP export to a local sink)"}


def run(argv=None) -> bool:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bookings", type=int, default=1600)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--texts", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args, _ = parser.parse_known_args(argv)
    return asyncio.run(main(args.bookings, args.clients, args.texts, args.rounds))


if __name__ == "__main__":
    if sys.argv[1:2] == ["dispatch"]:  # the dispatcher of one run, in its own process
        db, schema, n = sys.argv[2:5]
        print(json.dumps({"texts_per_second": asyncio.run(dispatch_worker(db, schema, int(n)))}))
    else:
        raise SystemExit(0 if run() else 1)
