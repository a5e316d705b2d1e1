"""What the dispatcher writes about the texts it handled: outcomes (sent, settled, failed)
gathered as they come and committed in groups, each text only while its claim is still the
dispatcher's."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from services.notifier import store
from services.notifier.claimed import Claimed
from services.notifier.inbox import refused_number
from services.notifier.senders import SendError
from services.notifier.store import Q
from services.notifier.twilio_errors import UNKNOWN_ATTEMPTS, ErrorClass
from shared.db import Connection
from shared.events import Envelope
from shared.events.notifier import SmsFailed
from shared.outbox import enqueue

log = logging.getLogger(__name__)


@dataclass
class Outcomes:
    """What happened to some claimed texts, as the rows and events to write."""

    sent_rows: list[tuple[Any, ...]] = field(default_factory=list)
    """(id, claim, SID) of texts the provider took; `mark_sent` writes their `SmsSent`."""
    settled: list[tuple[Any, ...]] = field(default_factory=list)
    """(id, claim, status, reason, new due time or None) of texts that did not go out."""
    events: list[Envelope[Any]] = field(default_factory=list)
    problems: list[tuple[str, str, str]] = field(default_factory=list)
    """(number, Twilio code, what is wrong) of numbers Twilio refused (`inbox.refused_number`)."""
    releases: list[UUID] = field(default_factory=list)
    """Patients whose "reply STOP" text did not go out: their next text carries the notice."""

    def sent(self, text: Claimed, sid: str) -> Outcomes:
        self.sent_rows.append((text.due.id, text.claim, sid))
        return self

    def settle(self, text: Claimed, status: str, reason: str,
               due: datetime | None = None) -> Outcomes:
        self.settled.append((text.due.id, text.claim, status, reason, due))
        return self

    def failed(self, text: Claimed, exc: SendError) -> Outcomes:
        """The provider refused the text: what follows from the error's class."""
        attempts = text.due.attempts
        if exc.kind is ErrorClass.SENDER:  # no one's number is at fault: it waits for the fix
            return self.settle(
                text, "pending", f"sending paused: Twilio {exc.code} ({exc.meaning})"
            )
        if exc.kind is ErrorClass.TRANSIENT or (exc.kind is ErrorClass.UNKNOWN
                                                and attempts < UNKNOWN_ATTEMPTS):
            return self.settle(text, "pending", exc.code,
                               datetime.now(UTC) + timedelta(seconds=retry_delay(attempts)))
        if exc.kind is ErrorClass.NUMBER:  # marked for every contact with it: staff see it
            self.problems.append((text.to, exc.code, f"{exc.meaning} (Twilio {exc.code})"))
        # the number or the message is at fault, or an unknown code kept coming: no more tries
        self.events.append(text.envelope(SmsFailed(text_id=text.due.id, error_code=exc.code,
                                                   permanent=exc.permanent)))
        return self.settle(text, "failed", exc.code)

    def settle_args(self) -> list[list[Any]]:
        """The settled texts as the columns `settle_claimed` takes."""
        return (
            [list(column) for column in zip(*self.settled, strict=True)]
            if self.settled
            else [[]] * 5
        )

    def size(self) -> int:
        return len(self.sent_rows) + len(self.settled)

    def pending(self) -> bool:
        return bool(self.sent_rows or self.settled or self.events or self.problems
                    or self.releases)

    def extend(self, other: Outcomes) -> None:
        for name in ("sent_rows", "settled", "events", "problems", "releases"):
            getattr(self, name).extend(getattr(other, name))


def retry_delay(attempts: int) -> float:
    """Seconds before the next try of a text tried `attempts` times: exponential backoff
    with jitter, at most about 5 minutes."""
    return min(300.0, 2.0 ** attempts) * (0.5 + random.random())


class Coalesced:
    """Calls `work` on items given concurrently, in groups: an item waits at most for the
    call under way, then goes with every item that arrived meanwhile. `work` returns one
    result per item, in order."""

    def __init__(self, work: Callable[[list[Any]], Awaitable[list[Any]]]) -> None:
        self.work = work
        self._waiting: list[tuple[object, asyncio.Future[Any]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def __call__(self, item: Any) -> Any:
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((item, done))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work_waiting())
        return await done

    async def _work_waiting(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting, []
            try:
                results = await self.work([item for item, _ in group])
            except Exception as exc:
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
            else:
                for (_, future), result in zip(group, results, strict=True):
                    if not future.done():
                        future.set_result(result)


class Results:
    """Records a batch's outcomes as they come, one statement (or transaction) at a time:
    each write takes everything that arrived while the one before was under way. Recording
    does not wait for the write. A failed write (PostgreSQL restarting) is retried for up to
    `retry_for` seconds: the SIDs of texts that went out are only in memory until then.
    Meanwhile `check` raises (the batch sends nothing more); `flush` waits for everything
    recorded to be written."""

    def __init__(self, pool: asyncpg.Pool, *, retry_for: float = 30.0) -> None:
        self.pool = pool
        self.retry_for = retry_for
        self._todo = Outcomes()
        self._writer: asyncio.Task[None] | None = None
        self._failure: Exception | None = None  # of the last write, while it is retried
        self._error: Exception | None = None  # given up

    def record(self, outcomes: Outcomes) -> None:
        self._todo.extend(outcomes)
        self._wake()

    def sent(self, text: Claimed, sid: str) -> None:
        """`record(Outcomes().sent(text, sid))`, the common case, made cheap."""
        self._todo.sent_rows.append((text.due.id, text.claim, sid))
        self._wake()

    def check(self) -> None:
        """Raise while writes fail: what went out since might not be recorded."""
        failure = self._error or self._failure
        if failure is not None:
            raise failure

    async def flush(self) -> None:
        """Wait until everything recorded is written (raises if a write failed for good)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)
        if self._error is not None:
            raise self._error

    def _wake(self) -> None:
        if self._error is None and (self._writer is None or self._writer.done()):
            self._writer = asyncio.create_task(self._write_all())

    async def _write_all(self) -> None:
        loop = asyncio.get_running_loop()
        while self._todo.pending():
            todo, self._todo = self._todo, Outcomes()
            deadline, delay = loop.time() + self.retry_for, 0.1
            while True:
                try:
                    await self._write(todo)  # each part checks the claim: safe to repeat
                    self._failure = None
                    break
                except Exception as exc:
                    self._failure = exc
                    if loop.time() + delay > deadline:
                        self._error = exc
                        log.error("gave up recording the results of %d texts (%d sent): %s",
                                  todo.size(), len(todo.sent_rows), type(exc).__name__)
                        return
                    log.warning("recording the results of %d texts failed (%s); retrying",
                                todo.size(), type(exc).__name__)
                    await asyncio.sleep(delay)
                    delay = min(2 * delay, 2.0)

    async def _write(self, todo: Outcomes) -> None:
        async with self.pool.acquire() as conn:
            if not (todo.settled or todo.problems or todo.releases or todo.events):
                await _mark_sent(conn, todo.sent_rows)  # one statement: no transaction needed
                return
            async with conn.transaction():
                await _mark_sent(conn, todo.sent_rows)
                if todo.settled:
                    await conn.execute(Q.settle_claimed, *todo.settle_args())
                for number, code, problem in todo.problems:
                    await refused_number(conn, number, code, problem)
                if todo.releases:
                    await conn.execute(Q.release_stop_notices, todo.releases)
                await enqueue(conn, todo.events)


async def _mark_sent(conn: Connection, sent_rows: list[tuple[Any, ...]]) -> None:
    """Record texts the provider took, with their `SmsSent` events (one statement)."""
    if not sent_rows:
        return
    ids, claims, sids = ([*column] for column in zip(*sent_rows, strict=True))
    stored = await store.mark_sent(conn, ids, claims, sids)
    if len(stored) < len(sent_rows):
        await _explain_unrecorded(conn, sent_rows, stored)


async def _explain_unrecorded(conn: Connection, sent_rows: list[tuple[Any, ...]],
                              stored: set[int]) -> None:
    """Log why sent texts were not recorded by `mark_sent`: their receipt came first (the
    same SID), or another dispatcher sent them too (which the claim tokens should prevent)."""
    ours = {text_id: sid for text_id, _, sid in sent_rows if text_id not in stored}
    for text_id, sid in (await store.sids_of_texts(conn, list(ours))).items():
        if sid == ours[text_id]:
            log.info("text %d was recorded from its receipt first", text_id)
        else:
            log.error("text %d went out twice: its claim was no longer this dispatcher's",
                      text_id)
