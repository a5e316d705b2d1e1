"""Twilio webhooks held while the database is out.

A delivery receipt or a patient's text that meets a database outage longer than the webhook's
retry budget (`webhook_db_retry_seconds`) is answered 503, as before, but Twilio sends
neither again once its 15 s are up: a lost receipt hides a failed delivery from staff, and a
lost "stop texting me" is an opt-out not honoured. So the webhook's work (an idempotent
transaction) is also held here, in this process, and applied in arrival order once the
database answers again. A Twilio retry of the same request, if one comes, is harmless: both
webhooks are idempotent.

Held work is in memory: it is lost if the process stops before the database is back (logged
with its count), and past `webhook_held_max` entries further ones are dropped (logged, and
counted in `/ops/status`). An inbound text applied late gets no TwiML answer: the patient
was already answered 503."""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from shared.db import Connection, transaction_retried
from shared.ops_status import Probe, StatusReport

log = logging.getLogger(__name__)
KINDS = ("receipt", "inbound")
Work = Callable[[Connection], Awaitable[Any]]


class HeldWebhooks:
    """Webhook transactions waiting for the database, applied oldest first by `run`."""

    def __init__(self, limit: int):
        self.limit = limit
        self._queue: deque[tuple[str, Work]] = deque()
        self._wake = asyncio.Event()
        self.applied: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        """Held work given up: the queue was full, or it failed for a reason other than the
        database being out (a bug: retrying it would block the rest)."""

    def waiting(self) -> Counter[str]:
        """How many of each kind wait now."""
        return Counter(kind for kind, _ in self._queue)

    def hold(self, kind: str, work: Work) -> None:
        """Keep `work` (a `kind` webhook's transaction) to apply once the database is back."""
        if len(self._queue) >= self.limit:
            self.dropped[kind] += 1
            log.error("a %s webhook was dropped: %d are held already", kind, len(self._queue))
            return
        self._queue.append((kind, work))
        self._wake.set()

    async def run(self, pool: asyncpg.Pool, *, first_wait: float = 0.5) -> None:
        """Apply the held work, oldest first, each in a transaction of its own; while the
        database is out, try again after doubling waits (`shared.db.transaction_retried`,
        with no deadline)."""
        try:
            while True:
                if not self._queue:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                kind, work = self._queue[0]
                try:
                    await transaction_retried(pool, work, budget=math.inf, first_wait=first_wait)
                except Exception as exc:  # not the database being out: do not retry forever
                    self.dropped[kind] += 1
                    log.error("a held %s webhook failed and was dropped (%s)", kind,
                              type(exc).__name__)
                else:
                    self.applied[kind] += 1
                self._queue.popleft()
        finally:
            if self._queue:
                log.error("stopping with %d held webhooks not applied: %s", len(self._queue),
                          dict(self.waiting()))

    def probe(self) -> Probe:
        """Adds the held webhooks to the status (`webhooks_held`) and metrics; any waiting
        is a problem (the database was out), as is any dropped."""

        async def probe(conn: Connection, report: StatusReport) -> None:
            waiting = self.waiting()
            report.sections["webhooks_held"] = {
                "waiting": {k: waiting[k] for k in KINDS},
                "applied": {k: self.applied[k] for k in KINDS},
                "dropped": {k: self.dropped[k] for k in KINDS}}
            g = report.gauge("kcb_webhooks_held", "Twilio webhooks held in this process while "
                             "the database was out: waiting, applied late, or dropped.",
                             "kind", "state")
            for kind in KINDS:
                for state, counts in (("waiting", waiting), ("applied", self.applied),
                                      ("dropped", self.dropped)):
                    g.add(counts[kind], kind, state)
            if waiting:
                report.problems.append(f"{sum(waiting.values())} Twilio webhooks wait for the "
                                       "database (held in this process)")
            if self.dropped:
                report.problems.append(f"{sum(self.dropped.values())} Twilio webhooks were "
                                       "dropped while the database was out (see the log)")

        return probe
