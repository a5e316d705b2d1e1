"""Live updates for open pages (server-sent events). Each console process reads the booking
and notifier topics from their end (no consumer group: every process sees every event) and
hands each event to the open streams of the event's clinic network that care about it. The
console keeps nothing: a stream only tells its page what to re-read, or, for a patient's
confirmation, what to show at once (booking records the confirmation from the same event,
a moment later: the page must not wait for it)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from aiokafka import AIOKafkaConsumer

from shared.events import Envelope, parse_envelope
from shared.topics import BOOKING_EVENTS, NOTIFIER_EVENTS

log = logging.getLogger(__name__)
CONFIRMATION_MEMORY_SECONDS = 120.0


@dataclass(eq=False)
class Stream:
    """One open page's stream: events of its network that `wants` go on its queue."""

    clinic_id: UUID
    wants: Callable[[Envelope[Any]], bool]
    queue: asyncio.Queue[Envelope[Any]] = field(
        default_factory=lambda: asyncio.Queue(maxsize=1000))


class Hub:
    """Fans the topics' events out to the open streams of this process."""

    def __init__(self) -> None:
        self.streams: set[Stream] = set()
        self.confirmed: dict[UUID, float] = {}
        self.ready = asyncio.Event()

    def open(self, clinic_id: UUID, wants: Callable[[Envelope], bool]) -> Stream:
        stream = Stream(clinic_id, wants)
        self.streams.add(stream)
        return stream

    def close(self, stream: Stream) -> None:
        self.streams.discard(stream)

    def recently_confirmed(self, booking_id: UUID) -> bool:
        """Whether a patient confirmed this booking in the last minutes (booking may not have
        recorded it yet when a page re-reads the sheet)."""
        at = self.confirmed.get(booking_id)
        return at is not None and time.monotonic() - at < CONFIRMATION_MEMORY_SECONDS

    def publish(self, env: Envelope[Any]) -> None:
        if env.event_type == "PatientConfirmed":
            now = time.monotonic()
            self.confirmed[env.payload.booking_id] = now
            if len(self.confirmed) > 10_000:
                self.confirmed = {k: v for k, v in self.confirmed.items()
                                  if now - v < CONFIRMATION_MEMORY_SECONDS}
        for stream in list(self.streams):
            if stream.clinic_id != env.clinic_id:
                continue
            try:
                if stream.wants(env):
                    stream.queue.put_nowait(env)
            except asyncio.QueueFull:
                log.warning("a live stream is not keeping up; event dropped for it")
            except Exception:  # a filter's bug must not stop the others
                log.exception("live stream filter failed")

    async def run(self, bootstrap_servers: str, topic_prefix: str,
                  options: dict[str, Any] | None = None) -> None:
        """Read the topics from their end until cancelled (reconnecting on failure);
        `options`: the clients' security options (`shared.kafka_security.client_options`)."""
        topics = [topic_prefix + BOOKING_EVENTS, topic_prefix + NOTIFIER_EVENTS]
        while True:
            consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap_servers,
                                        group_id=None, auto_offset_reset="latest",
                                        enable_auto_commit=False, fetch_max_wait_ms=50,
                                        **(options or {}))
            try:
                await consumer.start()
                for _ in range(100):  # partitions are assigned once metadata is in
                    if consumer.assignment():
                        break
                    await asyncio.sleep(0.05)
                self.ready.set()
                async for record in consumer:
                    try:
                        env = parse_envelope(record.value)
                    except Exception:
                        continue  # not an event: the services' consumers dead-letter it
                    self.publish(env)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("live updates: broker unavailable (%s); retrying", type(exc).__name__)
                await asyncio.sleep(2)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()
