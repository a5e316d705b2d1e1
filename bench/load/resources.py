"""Peak RSS and CPU of each service process (and the infrastructure) while the load runs,
sampled once a second with psutil; a process restarted after `kill -9` keeps its label."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import psutil

from devstack.stack import Stack


@dataclass
class Usage:
    peak_rss: int = 0
    cpu_seconds: dict[int, float] = field(default_factory=dict)  # by pid: one entry per life

    @property
    def cpu(self) -> float:
        return sum(self.cpu_seconds.values())


class ResourceSampler(threading.Thread):
    def __init__(self, stack: Stack, interval: float = 1.0):
        super().__init__(name="resources", daemon=True)
        self.stack = stack
        self.interval = interval
        self.usage: dict[str, Usage] = {}
        self.stop = threading.Event()
        self.started_at = time.monotonic()
        self.stopped_at: float | None = None

    def _targets(self) -> list[tuple[str, int, bool]]:
        out = [(mp.name, mp.pid, False) for mp in list(self.stack.processes)]
        for infra in (self.stack.postgres, self.stack.broker, self.stack.twilio_server):
            if infra is not None:  # PostgreSQL: the server and its backends together
                out.append((infra.name, infra.pid, infra.name == "postgres"))  # PSS
        return out

    def sample(self) -> None:
        for label, pid, with_children in self._targets():
            try:
                procs = [psutil.Process(pid)]
                if with_children:
                    procs += procs[0].children(recursive=True)
                # backends share memory: with children, proportional set sizes add up
                rss = (sum(p.memory_full_info().pss for p in procs) if with_children
                       else procs[0].memory_info().rss)
                usage = self.usage.setdefault(label, Usage())
                usage.peak_rss = max(usage.peak_rss, rss)
                for p in procs:
                    t = p.cpu_times()
                    usage.cpu_seconds[p.pid] = t.user + t.system
            except psutil.Error:
                continue  # killed or restarting: the next sample sees the new process

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            self.sample()
        self.stopped_at = time.monotonic()

    def table(self) -> list[tuple[str, float, float, float]]:
        """(label, peak RSS MB, CPU seconds, average CPU % of one core) per process
        (PostgreSQL: the proportional set size of the server and its backends)."""
        elapsed = (self.stopped_at or time.monotonic()) - self.started_at
        return [(label, u.peak_rss / 2 ** 20, u.cpu, 100 * u.cpu / max(elapsed, 1e-9))
                for label, u in sorted(self.usage.items())]
