"""Transactional outbox: write events in the caller's transaction; a relay publishes them.

`enqueue()` is called inside the transaction that changes state, so the change and its
events commit (or roll back) together. `OutboxRelay` is the only publisher: one active
relay per service (a PostgreSQL advisory lock) publishes unsent rows in id order, which
keeps each key's events in order; rows stay until the broker acknowledged them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections import Counter
from collections.abc import Iterable

import asyncpg
from aiokafka import AIOKafkaProducer

from shared.events import Envelope
from shared.metrics import EVENTS_PUBLISHED

log = logging.getLogger(__name__)

_INSERT = (
    "INSERT INTO outbox (topic, key, value, headers, event_id, event_type)"
    " SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::jsonb[], $5::uuid[], $6::text[])"
)


async def enqueue(conn: asyncpg.Connection, envelopes: Iterable[Envelope]) -> int:
    """Add events to the outbox in the caller's transaction. Returns how many."""
    envs = list(envelopes)
    if not envs:
        return 0
    await conn.execute(
        _INSERT,
        [e.topic for e in envs], [e.key for e in envs], [e.to_bytes() for e in envs],
        [None] * len(envs), [e.event_id for e in envs], [e.event_type for e in envs],
    )
    return len(envs)


async def enqueue_raw(conn: asyncpg.Connection, topic: str, key: bytes | None, value: bytes | None,
                      headers: dict[str, str]) -> None:
    """Add a raw message (e.g. a dead letter) to the outbox in the caller's transaction."""
    await conn.execute(
        _INSERT, [topic], [key or b""], [value or b""], [json.dumps(headers)], [None], [None]
    )


class OutboxRelay:
    """Publishes a service's outbox to Kafka, in order, at least once.

    Run `run()` as a task. Only the instance holding the advisory lock publishes; the others
    wait and take over if it goes away (its connection, and so its lock, is gone).
    """

    def __init__(self, pool: asyncpg.Pool, producer: AIOKafkaProducer, *, schema: str,
                 topic_prefix: str = "", batch_size: int = 500, poll_seconds: float = 1.0,
                 max_backoff: float = 5.0):
        self.pool = pool
        self.producer = producer
        self.schema = schema
        self.topic_prefix = topic_prefix
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.max_backoff = max_backoff
        self.published = 0
        self.is_leader = False
        self._wake = asyncio.Event()

    async def run(self) -> None:
        """Publish until cancelled; reconnects and retries on any failure."""
        while True:
            try:
                async with self.pool.acquire() as lock_conn:
                    await self._lead(lock_conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection lost etc.: try again shortly
                log.warning("outbox relay (%s) restarting after %s", self.schema, type(exc).__name__)
                self.is_leader = False
                await asyncio.sleep(1.0)

    async def _lead(self, conn: asyncpg.Connection) -> None:
        key = f"{self.schema}.outbox_relay"
        while not await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", key):
            await asyncio.sleep(2.0)  # another instance publishes; stand by
        self.is_leader = True
        channel = f"{self.schema}_outbox"
        listener = lambda *_: self._wake.set()  # noqa: E731
        await conn.add_listener(channel, listener)
        try:
            backoff = 0.1
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
                try:
                    await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
                except TimeoutError:
                    pass
        finally:
            self.is_leader = False
            # never let a dead connection replace a cancellation in flight
            with contextlib.suppress(Exception):
                await conn.remove_listener(channel, listener)
                await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", key)

    async def publish_batch(self) -> int:
        """Claim up to `batch_size` unsent rows, publish them, mark them sent. Returns count."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, topic, key, value, headers, event_type FROM outbox WHERE sent_at IS NULL"
                " ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                self.batch_size,
            )
            if not rows:
                return 0
            try:
                futures = []
                for r in rows:
                    headers = [(k, v.encode()) for k, v in json.loads(r["headers"]).items()] \
                        if r["headers"] else None
                    futures.append(await self.producer.send(
                        self.topic_prefix + r["topic"], value=r["value"], key=r["key"] or None, headers=headers))
                await asyncio.gather(*futures)
            except BaseException as exc:
                # keep the rows; record the failure on them outside this transaction
                asyncio.get_running_loop().create_task(
                    self._record_failure([r["id"] for r in rows], repr(exc)[:500]))
                raise
            await conn.execute(
                "UPDATE outbox SET sent_at = now(), attempts = attempts + 1 WHERE id = ANY($1::bigint[])",
                [r["id"] for r in rows],
            )
        self.published += len(rows)
        for (topic, event_type), n in Counter((r["topic"], r["event_type"] or "raw") for r in rows).items():
            EVENTS_PUBLISHED.labels(topic, event_type).inc(n)
        return len(rows)

    async def _record_failure(self, ids: list[int], error: str) -> None:
        try:
            async with self.pool.acquire() as conn:
                await conn.execute(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = $2"
                    " WHERE id = ANY($1::bigint[]) AND sent_at IS NULL", ids, error)
        except Exception:  # best effort bookkeeping only
            pass

    def wake(self) -> None:
        self._wake.set()
