"""Keeps `make run`'s services up: a service process that dies is started again on its port,
after a backoff, while PostgreSQL, the broker and the other services go on."""

from __future__ import annotations

import logging
import time

from devstack.stack import Stack

log = logging.getLogger("devstack")


class Supervisor:
    """Restarts the stack's service processes that exit. The delay starts at `first` seconds
    and doubles, up to `most`, while a process keeps dying within `stable` seconds of its
    start; one that ran longer starts again after `first`."""

    def __init__(
        self, stack: Stack, *, first: float = 1.0, most: float = 30.0, stable: float = 60.0
    ):
        self.stack = stack
        self.first, self.most, self.stable = first, most, stable
        self.started = {mp.name: time.monotonic() for mp in stack.processes}
        self.delay: dict[str, float] = {}
        self.due: dict[str, float] = {}

    def check(self) -> None:
        """Notice the processes that exited and restart those whose delay has passed."""
        now = time.monotonic()
        for mp in list(self.stack.processes):
            code = mp.proc.poll()
            if code is None:
                continue
            if mp.name not in self.due:
                ran = now - self.started.get(mp.name, now)
                delay = self.first if mp.name not in self.delay or ran >= self.stable \
                    else min(self.delay[mp.name] * 2, self.most)
                self.delay[mp.name], self.due[mp.name] = delay, now + delay
                log.warning("%s exited with code %s; restarting it in %.0f s", mp.name, code, delay)
            elif now >= self.due[mp.name]:
                del self.due[mp.name]
                new = self.stack.restart(mp, wait=False)
                self.started[mp.name] = now
                log.info("%s restarted (pid %d, port %d)", mp.name, new.pid, new.extra["port"])
