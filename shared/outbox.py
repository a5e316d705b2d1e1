"""Transactional outbox: write events in the caller's transaction; a relay publishes them.

`enqueue()` is called inside the transaction that changes state, so the change and its
events commit (or roll back) together. `OutboxRelay` is the only publisher: one active
relay per service (a PostgreSQL advisory lock) publishes committed unsent rows, lowest id
first; rows stay until the broker acknowledged them.

What order that keeps: a row's id is drawn when it is inserted, and the row becomes visible
when its transaction commits. So an event written after another event's transaction
committed has the higher id and is published after it: the events one transaction writes
keep their order, and so do those of changes that wait for each other (one booking's, on
its row lock). Events of transactions that overlap may go out in either order (a row with a
higher id may commit, and be published, first). The broker keeps the order it is given per
key (the patient, `Envelope.key`).

This module owns the outbox's row shape: services never write the table themselves.
- `enqueue(conn, envelopes)` writes events made in Python (the usual way).
- A statement that writes a state change and its event in one round trip includes in its
  query (`-- include: name`, fragments given to `shared.db.Queries`) the SQL these make:
  - `insert_row_sql(first_param, source=...)`: one event made in Python, passed as the
    parameters `row(envelope)` returns;
  - `insert_events_sql(Event, source=..., ...)`: one event per row of `source` (a CTE),
    its JSON built in SQL from the event's pydantic model: every envelope and payload field
    needs an SQL expression, so a field added to the model fails at import until the SQL
    says what it is. A test reading such rows back as events stays with the service (as
    tests/test_notifier_events.py does for `SmsSent`).

  For example, in a service's store module:

      Q = Queries(Path(__file__).with_name("queries.sql"), fragments={
          "sms_sent_events": insert_events_sql(
              SmsSent, source="sent", producer=PRODUCER, event_id="event_id",
              clinic_id="clinic_id", patient_id="patient_id", order_by="id",
              payload={"text_id": "id", "kind": "kind", "booking_id": "booking_id",
                       "provider_sid": "sid", "segments": "segments"})})

  and in its queries.sql, inside the statement that marks texts sent:

      ), events AS (
      -- include: sms_sent_events
      )
      SELECT id FROM sent;
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, get_args
from uuid import UUID

import asyncpg
from aiokafka import AIOKafkaProducer

from shared import tracing
from shared.db import Connection, Queries
from shared.events import Envelope, Event
from shared.metrics import EVENTS_PUBLISHED

log = logging.getLogger(__name__)
Q = Queries(Path(__file__).with_name("outbox.sql"))

COLUMNS = ("topic", "key", "value", "event_id", "event_type", "trace_context")
"""The outbox columns an event fills, in the order `row()` gives their values (the trace
context: the W3C traceparent of the work that wrote it, NULL while tracing is off)."""
_TYPES = ("text", "bytea", "bytea", "uuid", "text", "text")
BUSY_POLL_SECONDS = 0.0025
"""The relay's first pause before it looks again when a batch found no rows while a writer's
transaction was still open (writers do not notify a relay that is not waiting); doubled at
each such batch in a row (5 ms, 10 ms, ...), up to `poll_seconds`."""


async def enqueue(conn: Connection, envelopes: Iterable[Envelope]) -> int:
    """Add events to the outbox in the caller's transaction. Returns how many."""
    envs = list(envelopes)
    if not envs:
        return 0
    await conn.execute(
        Q.insert_rows,
        [e.topic for e in envs], [e.key for e in envs], [e.to_bytes() for e in envs],
        [None] * len(envs), [e.event_id for e in envs], [e.event_type for e in envs],
        [tracing.context_of(e.causation_id) for e in envs] if tracing.enabled() else None,
    )
    return len(envs)


async def enqueue_raw(conn: Connection, topic: str, key: bytes | None, value: bytes | None,
                      headers: dict[str, str]) -> None:
    """Add a raw message (e.g. a dead letter) to the outbox in the caller's transaction."""
    await conn.execute(
        Q.insert_rows, [topic], [key or b""], [value or b""], [json.dumps(headers)], [None], [None],
        [tracing.traceparent()] if tracing.enabled() else None,
    )


def row(envelope: Envelope) -> tuple[str, bytes, bytes, UUID, str, str | None]:
    """The values of `COLUMNS` for one event: the parameters of `insert_row_sql`."""
    return (envelope.topic, envelope.key, envelope.to_bytes(), envelope.event_id,
            envelope.event_type, tracing.context_of(envelope.causation_id))


def insert_row_sql(first_param: int, *, source: str | None = None) -> str:
    """SQL writing one event given as parameters `$first_param` on (`row(envelope)`), once
    per row of `source` if given (e.g. only if the state change inserted its row)."""
    params = ", ".join(f"${first_param + i}::{t}" for i, t in enumerate(_TYPES))
    return f"INSERT INTO outbox ({', '.join(COLUMNS)})\nSELECT {params}" + \
        (f"\nFROM {source}" if source else "")


def insert_events_sql(event: type[Event], *, source: str, producer: str, event_id: str,
                      clinic_id: str, patient_id: str | None, payload: Mapping[str, str],
                      correlation_id: str | None = None, causation_id: str | None = None,
                      trace_context: str | None = None, order_by: str | None = None) -> str:
    """SQL writing one `event` per row of `source`, built from SQL expressions over its
    columns: `payload` maps each of the model's fields to one. `event_id` names a column
    holding a new uuid per row (e.g. `gen_random_uuid() AS event_id` in `source`: it is read
    more than once); the correlation id is the event's own unless given, the causation id
    NULL unless given, and so is the trace context (an SQL expression of a `traceparent`).

    The JSON is one concatenation: what the model fixes (names, the event's type, version
    and producer) is written out once, here, and each value by its type in the model
    (`_json_of`); json_build_object looked up every argument's type on every row."""
    fields = list(event.model_fields)
    if set(payload) != set(fields):
        raise ValueError(
            f"{event.__name__} SQL: fields missing "
            f"{sorted(set(fields) - set(payload))}, unknown {sorted(set(payload) - set(fields))}"
        )
    body: list[_Part] = [_Sql(_json_of(payload[f], event.model_fields[f].annotation))
                         for f in fields]
    null = "null"
    envelope: dict[str, _Part | list[_Part]] = {
        "event_id": _Sql(_json_of(event_id, UUID)), "event_type": json.dumps(event.event_type()),
        "schema_version": str(int(event.schema_version)),
        "occurred_at": _Sql("(SELECT to_json(now())::text)"),  # once per statement
        "producer": json.dumps(producer), "clinic_id": _Sql(_json_of(clinic_id, UUID)),
        "patient_id": _Sql(_json_of(patient_id, UUID)) if patient_id else null,
        "correlation_id": _Sql(_json_of(correlation_id or event_id, UUID)),
        "causation_id": _Sql(_json_of(causation_id, UUID)) if causation_id else null,
        "payload": _object(dict(zip(fields, body, strict=True))),
    }
    if set(envelope) != set(Envelope.model_fields):
        raise ValueError(f"the envelope's fields changed: {sorted(Envelope.model_fields)}")
    value = _concatenated(_object({f: envelope[f] for f in Envelope.model_fields}))
    key = f"coalesce({patient_id}, {clinic_id})" if patient_id else clinic_id
    return (f"INSERT INTO outbox ({', '.join(COLUMNS)})\n"
            f"SELECT {_literal(event.topic)}, convert_to(({key})::text, 'UTF8'),\n"
            f"       convert_to({value}, 'UTF8'),\n"
            f"       {event_id}, {_literal(event.event_type())}, {trace_context or 'NULL::text'}\n"
            f"FROM {source}" + (f" ORDER BY {order_by}" if order_by else ""))


class _Sql(str):
    """SQL giving a JSON text (where a plain `str` is the JSON text itself)."""


_Part = str | _Sql


def _json_of(expr: str, annotation: Any) -> str:
    """SQL giving the JSON text of `expr`, a value of the model's type `annotation` ('null'
    when NULL): a uuid as its text in quotes, an integer or a boolean as its text, anything
    else through to_json (strings escaped, times as json_build_object writes them)."""
    kinds = [a for a in get_args(annotation) if a is not type(None)] or [annotation]
    if kinds == [UUID]:
        sql = f"'\"' || ({expr})::text || '\"'"
    elif kinds in ([int], [bool]):
        sql = f"({expr})::text"
    else:
        sql = f"to_json({expr})::text"
    return f"coalesce({sql}, 'null')"


def _object(fields: Mapping[str, _Part | list[_Part]]) -> list[_Part]:
    """A JSON object's parts, in order."""
    parts: list[_Part] = ["{"]
    for i, (name, value) in enumerate(fields.items()):
        parts.append(f"{', ' if i else ''}{json.dumps(name)}: ")
        parts.extend(value if isinstance(value, list) else [value])
    return [*parts, "}"]


def _concatenated(parts: list[_Part]) -> str:
    """SQL concatenating `parts`: adjacent fixed texts as one literal."""
    pieces: list[str] = []
    fixed = ""
    for part in parts:
        if isinstance(part, _Sql):
            if fixed:
                pieces.append(_literal(fixed))
            pieces.append(part)
            fixed = ""
        else:
            fixed += part
    if fixed:
        pieces.append(_literal(fixed))
    return " || ".join(pieces)


def _literal(text: str) -> str:
    """A SQL string literal (standard_conforming_strings, PostgreSQL's default)."""
    return "'" + text.replace("'", "''") + "'"


class OutboxRelay:
    """Publishes a service's outbox to Kafka, in order, at least once.

    Run `run()` as a task. Only the instance holding the advisory lock publishes; the others
    wait and take over if it goes away (its connection, and so its lock, is gone). The lock
    and the LISTEN are a session's: they take a connection of `session_pool` (direct, not
    through PgBouncer in transaction mode; default `pool`), the batches go through `pool`.
    """

    def __init__(self, pool: asyncpg.Pool, producer: AIOKafkaProducer, *, schema: str,
                 topic_prefix: str = "", batch_size: int = 500, poll_seconds: float = 1.0,
                 max_backoff: float = 5.0, session_pool: asyncpg.Pool | None = None):
        self.pool = pool
        self.session_pool = session_pool or pool
        self.producer = producer
        self.schema = schema
        self.topic_prefix = topic_prefix
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.max_backoff = max_backoff
        self.published = 0
        self.is_leader = False
        self._wake = asyncio.Event()
        self._waiting = False
        """Whether this relay holds the waiting lock (writers notify it)."""
        self._bookkeeping: set[asyncio.Task[None]] = set()
        """Failures being recorded on rows (after their batch's transaction ended)."""

    async def run(self) -> None:
        """Publish until cancelled; reconnects and retries on any failure."""
        while True:
            try:
                async with self.session_pool.acquire() as lock_conn:
                    await self._lead(lock_conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection lost etc.: try again shortly
                log.warning(
                    "outbox relay (%s) restarting after %s", self.schema, type(exc).__name__
                )
                self.is_leader = False
                await asyncio.sleep(1.0)

    async def _lead(self, conn: Connection) -> None:
        key = f"{self.schema}.outbox_relay"
        while not await conn.fetchval(Q.take_relay_lock, key):
            await asyncio.sleep(2.0)  # another instance publishes; stand by
        self.is_leader = True
        channel = f"{self.schema}_outbox"
        listener = lambda *_: self._wake.set()  # noqa: E731
        await conn.add_listener(channel, listener)
        try:
            await self._publish_until_cancelled(conn)
        finally:
            self.is_leader = False
            # never let a dead connection replace a cancellation in flight
            with contextlib.suppress(Exception):
                await conn.remove_listener(channel, listener)
                if self._waiting:
                    await conn.execute(Q.stop_waiting, self.schema)
                await conn.execute(Q.release_relay_lock, key)
            self._waiting = False

    async def _publish_until_cancelled(self, conn: Connection) -> None:
        """Publish batches; between them, wait for a writer's NOTIFY, which writers send only
        while this relay holds the waiting lock (`stop_waiting`: migration 060). It takes it
        when a batch was not full and no writer that did not notify is still open, and
        publishes once more before it waits (the rows of writers that committed meanwhile)."""
        backoff, empty = 0.1, 0
        while True:
            self._wake.clear()
            try:
                sent = await self.publish_batch()
                backoff = 0.1
            except (asyncpg.PostgresConnectionError, OSError, asyncpg.InterfaceError):
                raise
            except Exception as exc:  # broker unreachable or slow: keep rows, back off
                log.warning("outbox publish failed (%s); retrying in %.1fs",
                            type(exc).__name__, backoff)
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, self.max_backoff)
                continue
            if sent == self.batch_size:
                continue  # more waiting
            if not self._waiting:
                self._waiting = await conn.fetchval(Q.start_waiting, self.schema)
                empty = 0 if sent or self._waiting else empty + 1
                if empty:  # a writer is open: its rows come soon (or it is a long one)
                    await asyncio.sleep(min(BUSY_POLL_SECONDS * 2 ** empty, self.poll_seconds))
                continue  # publish (once more, if now waiting)
            if not sent:
                try:
                    await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
                except TimeoutError:
                    continue  # still waiting: a poll, as every `poll_seconds` before
            await conn.execute(Q.stop_waiting, self.schema)  # woken, or rows came: busy
            self._waiting = False

    async def publish_batch(self) -> int:
        """Claim up to `batch_size` unsent rows, publish them, mark them sent. Returns count."""
        if self._bookkeeping:  # the last failure is on its rows before they are claimed again
            await asyncio.gather(*self._bookkeeping)
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(Q.claim_unsent, self.batch_size)
            if not rows:
                return 0
            try:
                await self._send(rows)
            except BaseException as exc:
                # keep the rows; record the failure on them once this transaction has ended
                # (it holds their locks)
                task = asyncio.get_running_loop().create_task(
                    self._record_failure([r["id"] for r in rows], repr(exc)[:500]))
                self._bookkeeping.add(task)
                task.add_done_callback(self._bookkeeping.discard)
                raise
            await conn.execute(Q.mark_sent, [r["id"] for r in rows])
        self.published += len(rows)
        for (topic, event_type), n in Counter(
            (r["topic"], r["event_type"] or "raw") for r in rows
        ).items():
            EVENTS_PUBLISHED.labels(topic, event_type).inc(n)
        return len(rows)

    async def _send(self, rows: list[asyncpg.Record]) -> None:
        """Hand the rows to the producer in order, then wait for the broker's acks. A row
        with a trace context is sent in it: traced, the producer's span continues that trace
        and its `traceparent` header names that span; not traced, the header names the
        row's own context (the trace goes on in the consumers)."""
        futures = []
        for r in rows:
            headers = [(k, v.encode()) for k, v in json.loads(r["headers"]).items()] \
                if r["headers"] else None
            context = r["trace_context"]
            if context is not None and not tracing.enabled():
                headers = [*(headers or ()), ("traceparent", context.encode())]
            send = self.producer.send(self.topic_prefix + r["topic"], value=r["value"],
                                      key=r["key"] or None, headers=headers)
            if context is not None and tracing.enabled():
                with tracing.attached(context):
                    futures.append(await send)
            else:
                futures.append(await send)
        await asyncio.gather(*futures)

    async def _record_failure(self, ids: list[int], error: str) -> None:
        try:
            async with self.pool.acquire() as conn:
                await conn.execute(Q.record_failure, ids, error)
        except Exception:  # best effort bookkeeping only
            pass

    def wake(self) -> None:
        """Publish now rather than at the next poll."""
        self._wake.set()
