"""Idempotent batch consumption with dead-lettering, for every service's subscribers.

A FastStream batch subscriber hands a batch of raw records to `EventConsumer.process()`:
1. each record is parsed and validated; bytes that are not an event go to the DLQ;
2. in ONE PostgreSQL transaction: the processed-events rows are inserted (a redelivered
   event finds its row and is skipped), each new event's handler runs on the same
   connection (its effects and outgoing events join the transaction), and dead letters are
   recorded and queued for `<topic>.dlq` through the outbox;
3. only after that commit does FastStream commit the offsets (ack). On a transient failure
   (database gone) the batch is not acked: the subscriber seeks back and it comes again.

A handler that raises for one event does not block the others: the batch is retried event
by event under savepoints, and the failing event is dead-lettered with its error.

A replayed dead letter (headers `dlq.replay_of` and `dlq.consumer`, see `shared.dead_letters`)
goes back to its source topic, where every consumer group sees it: only the consumer named in
`dlq.consumer` handles it; the others skip it without effect (counted as ignored).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
from aiokafka.structs import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from opentelemetry.trace import Span
from pydantic import ValidationError

from shared import tracing
from shared.asyncapi import batch_annotation
from shared.db import TRANSIENT, Connection, Queries
from shared.events import Envelope, Event, parse_envelope
from shared.logs import log_context
from shared.metrics import BATCH_SECONDS, EVENTS_CONSUMED
from shared.outbox import enqueue_raw
from shared.topics import dlq

log = logging.getLogger(__name__)
Q = Queries(Path(__file__).with_name("consumer.sql"))

Handler = Callable[[Connection, Envelope[Any]], Awaitable[None]]
"""Handles one event in the consumer's transaction: `async def on_x(conn, env: Envelope[X])`."""
BatchHandler = Callable[[Connection, list[Envelope[Any]]], Awaitable[None]]
"""Handles a batch's new events of its types at once, in order."""


@dataclass
class BatchResult:
    handled: int = 0
    duplicates: int = 0
    ignored: int = 0
    dead_lettered: int = 0
    by_type: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(event type, outcome) -> count, for the metrics."""

    def count(self, outcome: str, event_type: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)
        self.by_type[(event_type, outcome)] += 1

    def tally(self, outcome: str, event_types: list[str]) -> None:
        """Count an outcome once for each of these events (by their types)."""
        if event_types:
            setattr(self, outcome, getattr(self, outcome) + len(event_types))
            for event_type, n in Counter(event_types).items():
                self.by_type[(event_type, outcome)] += n


@dataclass
class _DeadLetter:
    record: ConsumerRecord
    error: str
    event_type: str = "unparsable"


@dataclass
class EventConsumer:
    """One logical consumer (a consumer group): `name` also keys its processed-events rows."""

    name: str
    get_pool: Callable[[], asyncpg.Pool]
    """Returns the service's pool (it exists only once the service has started)."""
    handlers: dict[type[Event], Handler]
    retry_delay: float = 1.0
    topic_prefix: str = ""
    """Prefix of the physical topic names (the outbox stores logical names)."""
    batch_handlers: dict[type[Event], BatchHandler] = field(default_factory=dict)
    """Handlers that take all of a batch's new events of their types at once, in order (for
    throughput); they must give the same result as taking them one by one."""
    stats: BatchResult = field(default_factory=BatchResult)
    topics: list[str] = field(default_factory=list)
    """The physical topics it subscribed to."""

    @property
    def group_id(self) -> str:
        return self.topic_prefix + self.name

    def subscribe(self, broker: KafkaBroker, *topics: str, max_records: int = 500,
                  batch_timeout_ms: int = 100,
                  **consumer_options: Any) -> Callable[[Any], Awaitable[None]]:
        """Register a FastStream batch subscriber for the logical `topics` on `broker`."""
        physical = [self.topic_prefix + t for t in topics]
        self.topics += physical

        async def raw_records(msg: Any) -> Any:  # skip FastStream's per-message JSON decoding
            return msg.raw_message

        async def consume(records: Any) -> None:
            await self.process(records)

        # the AsyncAPI document shows the envelopes of the events handled (never validated here)
        consume.__annotations__["records"] = batch_annotation(
            [*self.handlers, *self.batch_handlers]
        )
        broker.subscriber(
            *physical, group_id=self.group_id, batch=True, max_records=max_records,
            batch_timeout_ms=batch_timeout_ms, auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR, decoder=raw_records,
            title=self.name, **consumer_options,
        )(consume)
        return consume

    async def process(self, records: Sequence[ConsumerRecord]) -> BatchResult:
        """Process one batch exactly once in effect; raises only on transient failures."""
        started = time.perf_counter()
        events, dead, ignored = self._sort(records)
        result = _with_ignored(ignored)
        try:
            async with self.get_pool().acquire() as conn:
                try:
                    async with conn.transaction():
                        await self._apply(conn, events, result)
                        await self._dead_letter(conn, dead, result)
                except TRANSIENT:
                    raise
                except Exception:
                    result = _with_ignored(ignored)
                    async with conn.transaction():
                        await self._apply_one_by_one(conn, events, dead, result)
                        await self._dead_letter(conn, dead, result)
        except TRANSIENT as exc:
            log.warning("%s: batch of %d not processed (%s); it will be redelivered",
                        self.name, len(records), type(exc).__name__)
            await asyncio.sleep(self.retry_delay)
            raise
        for name in ("handled", "duplicates", "ignored", "dead_lettered"):
            setattr(self.stats, name, getattr(self.stats, name) + getattr(result, name))
        for (event_type, outcome), n in result.by_type.items():
            EVENTS_CONSUMED.labels(self.name, event_type, outcome).inc(n)
        BATCH_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        return result

    def _sort(self, records: Sequence[ConsumerRecord]) -> tuple[
            list[tuple[ConsumerRecord, Envelope[Any]]], list[_DeadLetter], Counter[str]]:
        """A batch's records sorted: the events this consumer handles, the records that are
        no event (dead letters), and the counts of the events it ignores, by type."""
        events: list[tuple[ConsumerRecord, Envelope[Any]]] = []
        dead: list[_DeadLetter] = []
        ignored: Counter[str] = Counter()
        for record in records:
            if replayed_for(record) not in (None, self.name):
                ignored[_event_type(record)] += 1  # another consumer's dead letter
                continue
            try:
                env = parse_envelope(record.value or b"")
            except (ValidationError, ValueError) as exc:
                dead.append(_DeadLetter(record, f"invalid event: {_describe(exc)}"))
                continue
            if type(env.payload) in self.handlers or type(env.payload) in self.batch_handlers:
                events.append((record, env))
            else:
                ignored[env.event_type] += 1
        return events, dead, ignored

    async def _apply(self, conn: Connection, events: Sequence[tuple[ConsumerRecord, Envelope[Any]]],
                     result: BatchResult) -> None:
        if not events:
            return
        ids = [env.event_id for _, env in events]
        new = await conn.fetchval(Q.record_processed, self.name, ids)
        # as many new rows as events: each is new and there once (the usual batch), nothing to
        # sort out; else the new ones, each run once
        fresh: set[UUID] | None = None if len(new) == len(ids) else set(new)
        if tracing.enabled():  # a span per event handled, in its producer's trace
            spans = tracing.event_spans(self.name, [
                (r, e) for r, e in events if fresh is None or e.event_id in fresh])
            with tracing.handling(spans):
                await self._handle(conn, events, fresh, result, spans)
        else:
            await self._handle(conn, events, fresh, result, {})

    async def _handle(self, conn: Connection,
                      events: Sequence[tuple[ConsumerRecord, Envelope[Any]]],
                      fresh: set[UUID] | None, result: BatchResult,
                      spans: dict[UUID, Span]) -> None:
        """Run the handlers of the `fresh` events (None: every one is new, and there once)."""
        grouped: dict[BatchHandler, list[Envelope]] = {}
        handled: list[str] = []
        duplicates: list[str] = []
        for _, env in events:
            if fresh is not None:
                if env.event_id not in fresh:
                    duplicates.append(env.event_type)
                    continue
                fresh.discard(env.event_id)  # a duplicate inside the same batch runs once
            kind = type(env.payload)
            batch = self.batch_handlers.get(kind)
            if batch is not None:
                grouped.setdefault(batch, []).append(env)
            else:
                with log_context(event_id=env.event_id, correlation_id=env.correlation_id):
                    if spans:
                        with tracing.current(spans.get(env.event_id)):
                            await self.handlers[kind](conn, env)
                    else:
                        await self.handlers[kind](conn, env)
            handled.append(env.event_type)
        result.tally("handled", handled)
        result.tally("duplicates", duplicates)
        for batch, envs in grouped.items():
            await batch(conn, envs)

    async def _apply_one_by_one(self, conn: Connection,
                                events: Sequence[tuple[ConsumerRecord, Envelope[Any]]],
                                dead: list[_DeadLetter], result: BatchResult) -> None:
        for record, env in events:
            try:
                async with conn.transaction():  # a savepoint
                    await self._apply(conn, [(record, env)], result)
            except TRANSIENT:
                raise
            except Exception as exc:
                log.exception(
                    "%s: handler failed for %s %s", self.name, env.event_type, env.event_id
                )
                dead.append(
                    _DeadLetter(record, f"handler failed: {_describe(exc)}", env.event_type)
                )

    async def _dead_letter(self, conn: Connection, dead: list[_DeadLetter],
                           result: BatchResult) -> None:
        for d in dead:
            r = d.record
            inserted = await conn.fetchval(
                Q.record_dead_letter, self.name, r.topic, r.partition, r.offset,
                record_digest(r), r.key, r.value, d.error)
            if inserted is None:  # this very record, dead-lettered on an earlier delivery
                log.info("%s: %s[%d]@%d was dead-lettered already (redelivered)", self.name,
                         r.topic, r.partition, r.offset)
                continue
            logical = r.topic.removeprefix(self.topic_prefix)
            await enqueue_raw(conn, dlq(logical), r.key, r.value, {
                "dlq.error": d.error, "dlq.consumer": self.name, "dlq.source.topic": r.topic,
                "dlq.source.partition": str(r.partition), "dlq.source.offset": str(r.offset),
            })
            log.warning("%s: dead-lettered %s[%d]@%d as letter %d: %s", self.name, r.topic,
                        r.partition, r.offset, inserted, d.error.split(":")[0])
            result.count("dead_lettered", d.event_type)


def record_digest(record: ConsumerRecord) -> bytes:
    """What tells one record from another at the same topic, partition and offset.

    Offsets repeat when the broker or a topic is recreated (the embedded broker starts empty
    each run), so a dead letter is the offset plus this digest of the record's timestamp, key,
    value and headers: a redelivery of the same record has the same digest (one row), another
    message at a reused offset has another (its own row, its own DLQ message). A replay
    differs from its original by its `dlq.replay_of` header. The edge left: a message with the
    same bytes, headers and timestamp (to the millisecond, set by its producer) at the same
    offset of a recreated topic is taken for a redelivery; its content is the row's already.
    """
    digest = hashlib.sha256()
    parts = [str(record.timestamp).encode(), record.key or b"", record.value or b""]
    parts += [name.encode() + b"=" + (value or b"") for name, value in record.headers or ()]
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


def replayed_for(record: ConsumerRecord) -> str | None:
    """The consumer a replayed dead letter is meant for; None for any other record."""
    if not record.headers:  # most records: no header to look through
        return None
    headers = dict(record.headers)
    if "dlq.replay_of" not in headers:
        return None
    return (headers.get("dlq.consumer") or b"").decode(errors="replace")


def _event_type(record: ConsumerRecord) -> str:
    try:
        return parse_envelope(record.value or b"").event_type
    except (ValidationError, ValueError):
        return "unparsable"


def _with_ignored(ignored: Counter[str]) -> BatchResult:
    result = BatchResult(ignored=sum(ignored.values()))
    result.by_type.update({(t, "ignored"): n for t, n in ignored.items()})
    return result


def _describe(exc: Exception) -> str:
    """An error description without input values (they may hold patient data)."""
    if isinstance(exc, ValidationError):
        parts = [
            f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['type']}" for e in exc.errors()[:5]
        ]
        return "; ".join(parts)
    return f"{type(exc).__name__}: {exc}"[:500]
