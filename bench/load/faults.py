"""Faults injected while the load runs, from one thread, one after another: `kill -9` of
random service processes (each restarted at once), the broker paused with SIGSTOP for 30 s,
PostgreSQL restarted, and the Twilio-compatible server answering 20429, 500 and timeouts
for a while.

With an external broker (KAFKA_BOOTSTRAP_SERVERS) the broker fault runs the shell commands
BENCH_BROKER_STOP_COMMAND, then BENCH_BROKER_START_COMMAND (e.g. stopping one node of the
compose profile `ha`); without them it is skipped, as is the PostgreSQL restart with an
external PostgreSQL (DATABASE_URL): each skip is noted in the fault log."""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from devstack.stack import Stack


@dataclass
class FaultLog:
    events: list[tuple[datetime, str]] = field(default_factory=list)
    crashes: list[datetime] = field(default_factory=list)
    """Moments the notifier's crash window could have opened: notifier kills, PostgreSQL restarts."""
    kills: int = 0

    def note(self, what: str, crash: bool = False) -> None:
        now = datetime.now(UTC)
        self.events.append((now, what))
        if crash:
            self.crashes.append(now)


class FaultInjector(threading.Thread):
    """Runs the fault plan, then waits for `stop`.

    It must outlive the run: processes it restarts were started from this thread, and on
    Linux a child's parent-death signal fires when the thread that started it ends."""

    def __init__(self, stack: Stack, *, kills: int = 20, broker_pause: float = 30.0,
                 twilio_faults: float = 60.0, gap: tuple[float, float] = (2.0, 8.0),
                 seed: int = 1, log: FaultLog | None = None):
        super().__init__(name="faults", daemon=True)
        self.stack = stack
        self.kills = kills
        self.broker_pause = broker_pause
        self.twilio_fault_seconds = twilio_faults
        self.gap = gap
        self.rng = random.Random(seed)
        self.log = log or FaultLog()
        self.stop = threading.Event()
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            plan = ["kill"] * self.kills
            for other in ("pause broker", "twilio faults", "restart postgres"):
                plan.insert(self.rng.randint(2, max(2, len(plan) - 2)), other)
            for step in plan:
                if self.stop.wait(self.rng.uniform(*self.gap)):
                    break  # the run is being stopped
                getattr(self, step.replace(" ", "_"))()
        except BaseException as exc:  # reported by the driver
            self.error = exc
            self.log.note(f"fault injector failed: {exc!r}")
        finally:
            if self.stack.broker is not None:
                self.stack.broker.resume()
            self.done.set()
        self.stop.wait()

    def kill(self) -> None:
        mp = self.rng.choice([mp for mp in self.stack.processes if mp.proc.poll() is None])
        self.stack.kill(mp)
        self.log.kills += 1
        self.log.note(f"kill -9 {mp.name} (pid {mp.pid})", crash=mp.extra["service"] == "notifier")
        new = mp
        for _attempt in range(5):
            try:
                new = self.stack.restart(new, wait=False)
                self.stack.wait_ready([new])
                self.log.note(f"restarted {new.name} (pid {new.pid})")
                return
            except (RuntimeError, TimeoutError) as exc:
                self.log.note(f"restart of {mp.name} failed ({exc}); again")
                time.sleep(2)
        raise RuntimeError(f"could not restart {mp.name}")

    def pause_broker(self) -> None:
        if self.stack.broker is None:
            return self.stop_external_broker()
        self.log.note("broker paused (SIGSTOP)")
        self.stack.pause_broker()
        try:
            time.sleep(self.broker_pause)
        finally:
            self.stack.resume_broker()
        self.log.note(f"broker resumed after {self.broker_pause:.0f} s")

    def stop_external_broker(self) -> None:
        """The broker fault on an external broker: its stop command, the pause, its start
        command (skipped without them)."""
        stop, start = (os.environ.get(f"BENCH_BROKER_{step}_COMMAND") for step in ("STOP", "START"))
        if not (stop and start):
            self.log.note("broker fault skipped: external broker and no BENCH_BROKER_STOP_COMMAND "
                          "and BENCH_BROKER_START_COMMAND")
            return
        self.log.note(f"broker stopped ({stop})")
        subprocess.run(stop, shell=True, check=True, timeout=120)
        try:
            time.sleep(self.broker_pause)
        finally:
            subprocess.run(start, shell=True, check=True, timeout=120)
        self.log.note(f"broker started again after {self.broker_pause:.0f} s ({start})")

    def restart_postgres(self) -> None:
        if self.stack.postgres is None:
            self.log.note("PostgreSQL restart skipped: external PostgreSQL")
            return
        self.log.note("PostgreSQL restarting", crash=True)
        self.stack.restart_postgres()
        self.log.note("PostgreSQL restarted")

    def twilio_faults(self) -> None:
        httpx.post(f"{self.stack.twilio_server.url}/_fake/faults", timeout=10, json={
            "mode": "mixed", "seconds": self.twilio_fault_seconds, "rate": 0.5}).raise_for_status()
        self.log.note(f"Twilio answers 20429/500/timeouts to half the requests for "
                      f"{self.twilio_fault_seconds:.0f} s")
