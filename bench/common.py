"""Shared set-up for benchmarks: embedded (or configured) PostgreSQL and broker."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import statistics
import tempfile
import warnings
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from devstack.embedded import start_postgres, start_tansu

T = TypeVar("T")


class PostgresCpu:
    """CPU seconds a PostgreSQL server on this machine has used so far: its postmaster, its
    live processes, and the exited ones the postmaster reaped (Linux `/proc`)."""

    def __init__(self, postmaster: int):
        self.postmaster = postmaster

    @classmethod
    async def of(cls, conn) -> PostgresCpu | None:
        """The server `conn` is connected to, or None if it is not a process here."""
        try:
            postmaster = _stat(await conn.fetchval("SELECT pg_backend_pid()"))[1]
            with open(f"/proc/{postmaster}/cmdline", "rb") as f:
                if b"postgres" not in f.read():
                    return None
        except OSError:
            return None
        return cls(postmaster)

    def seconds(self) -> float:
        ticks = sum(_stat(self.postmaster)[11:15])  # its own and its reaped children's
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    fields = _stat(int(pid))
                except OSError:  # gone meanwhile
                    continue
                if fields[1] == self.postmaster:
                    ticks += fields[11] + fields[12]
        return ticks / os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[int]:
    """The numeric fields of /proc/<pid>/stat after the command name (1: parent pid,
    11-14: user and system ticks, own then reaped children's)."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return [int(x) if x.lstrip("-").isdigit() else 0 for x in rest]


@contextlib.contextmanager
def infrastructure():
    """Yield (database_url, bootstrap_servers); start embedded ones unless configured
    through BENCH_DATABASE_URL / BENCH_KAFKA_BOOTSTRAP_SERVERS."""
    started = []
    with tempfile.TemporaryDirectory(prefix="kcb-bench-") as tmp:
        try:
            db = os.environ.get("BENCH_DATABASE_URL")
            kafka = os.environ.get("BENCH_KAFKA_BOOTSTRAP_SERVERS")
            if not db:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    pg = start_postgres(Path(tmp) / "pg", fsync=False)
                started.append(pg)
                db = pg.url
            if not kafka:
                broker = start_tansu(log_file=Path(tmp) / "tansu.log")
                started.append(broker)
                kafka = broker.url
            yield db, kafka
        finally:
            for p in reversed(started):
                p.stop()


def run_as_deployed(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` on the event loop the services run on: uvicorn's, uvloop where it is
    installed (as it is with the project's dependencies), else asyncio's own."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


ROUNDS = 3
"""Timed rounds of the benchmarks whose targets are judged on their median."""


@dataclass(frozen=True)
class Target:
    """A benchmark's target and the figure it was judged on."""

    name: str
    value: float
    limit: float
    unit: str
    at_most: bool = False

    @property
    def held(self) -> bool:
        return self.value <= self.limit if self.at_most else self.value >= self.limit

    def __str__(self) -> str:
        sign = "<=" if self.at_most else ">="
        return (f"{'held    ' if self.held else 'NOT held'}  {self.name}: {_figure(self.value)} "
                f"{self.unit} (target {sign} {_figure(self.limit)})")


def _figure(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"


TARGETS: list[Target] = []
"""Every target judged in this run, in order (`python -m bench` prints them at the end)."""


def judge(name: str, value: float, limit: float, unit: str, *, at_most: bool = False) -> bool:
    """Record a target (`value` >= `limit`, or <= with `at_most`); return whether it held."""
    target = Target(name, value, limit, unit, at_most)
    TARGETS.append(target)
    return target.held


@contextlib.contextmanager
def steady_load_generator() -> Any:
    """No garbage collection in this process (the load generator) while a timed phase runs:
    a full collection of its heap paused every request in flight at once (71 ms in one
    round, the 20 slowest requests of an open-loop phase all started then), which is the
    instrument's latency, not the service's. What the phase leaves is collected after."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def median(values: list[float]) -> float:
    """The median of a benchmark's rounds."""
    return statistics.median(values)


def report(title: str, rows: list[tuple[str, float]], baseline: str, target: float | None = None,
           unit: str = "events/s") -> bool:
    """Print figures and each one's ratio to the baseline; return whether the target is met."""
    base = dict(rows)[baseline]
    print(f"\n== {title}")
    ok = True
    for name, value in rows:
        ratio = value / base if base else float("nan")
        mark = ""
        if target is not None and name != baseline:
            met = judge(f"{name} vs {baseline}", ratio, target, "x")
            ok &= met
            mark = f"  (target >= {target:.2f}x: {'met' if met else 'NOT met'})"
        print(f"   {name:<46} {value:>12,.0f} {unit}   {ratio:5.2f}x {baseline}{mark}")
    return ok


async def consume_all(bootstrap: str, topic: str, consumer, n: int, **options) -> float:
    """Run `consumer` (an `EventConsumer`) as a FastStream subscriber of `topic` until it has
    processed `n` records; return the seconds from its first batch to its last."""
    import time

    from faststream.kafka import KafkaBroker

    broker = KafkaBroker(bootstrap, log_level=10)
    state = {"done": 0, "first": None}
    finished = asyncio.Event()
    original = consumer.process

    async def counted(records):
        state["first"] = state["first"] or time.perf_counter()
        result = await original(records)
        state["done"] += len(records)
        if state["done"] >= n:
            finished.set()
        return result

    consumer.process = counted
    consumer.subscribe(broker, topic, **options)
    await broker.start()
    try:
        await finished.wait()
    finally:
        await broker.stop()
    return time.perf_counter() - state["first"]
