"""A service's health as ops see it: readiness, outbox backlog, dead letters, consumer lag
and the service's own figures (texts, timers), with the problems an on-call person must act
on. The same report feeds `/ops/status` (CLI, dashboard) and the gauges of `/metrics`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.consumer import EventConsumer
from shared.db import Connection
from shared.dead_letters import Q
from shared.metrics import Gauge
from shared.settings import ServiceSettings

log = logging.getLogger(__name__)
BROKER_TIMEOUT = 3.0


@dataclass
class StatusReport:
    """What `/ops/status` answers: figures by section, gauges for `/metrics`, problems."""

    service: str
    sections: dict[str, Any] = field(default_factory=dict)
    gauges: list[Gauge] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    history_minutes: int = 0
    """When set, probes add their figures' history of that many minutes to `series`."""
    series: dict[str, Any] = field(default_factory=dict)

    def gauge(self, name: str, help: str, *labels: str) -> Gauge:
        g = Gauge(name, help, labels)
        self.gauges.append(g)
        return g

    @property
    def healthy(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"service": self.service, "healthy": self.healthy, "problems": self.problems,
                **self.sections}


Probe = Callable[[Connection, StatusReport], Awaitable[None]]
"""A service's own contribution to its report (reads its tables, adds sections and gauges)."""


class Observed(Protocol):
    """What a status report reads of a service's runtime (`shared.runtime.ServiceRuntime`)."""

    settings: ServiceSettings
    consumers: list[EventConsumer]
    probes: list[Probe]
    lag_reader: LagReader

    @property
    def db(self) -> asyncpg.Pool: ...

    async def readiness(self) -> dict[str, str]: ...


class LagReader:
    """Reads consumer-group lag from the broker: end offsets minus committed offsets.

    It uses one plain consumer per group that never subscribes (so it never joins the group
    or moves its partitions) and only asks for offsets: it works with Apache Kafka and tansu
    (whose answer to the admin client's offset request aiokafka cannot decode)."""

    def __init__(self, bootstrap: str, options: dict[str, Any] | None = None):
        self.bootstrap = bootstrap
        self.options = options or {}
        """The clients' security options (`shared.kafka_security.client_options`)."""
        self._consumers: dict[str, AIOKafkaConsumer] = {}

    async def _consumer(self, group: str) -> AIOKafkaConsumer:
        if group not in self._consumers:
            consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=group,
                                        enable_auto_commit=False, request_timeout_ms=3000,
                                        **self.options)
            try:
                await consumer.start()
            except BaseException:
                await _quietly_stop(consumer)
                raise
            self._consumers[group] = consumer
        return self._consumers[group]

    async def lag(self, group: str, topics: list[str]) -> list[dict[str, Any]]:
        """Per topic partition: committed offset, end offset and lag of `group`."""
        consumer = await self._consumer(group)
        partitions = [TopicPartition(t, p) for t in topics
                      for p in sorted(consumer.partitions_for_topic(t) or ())]
        if len(partitions) == 0:  # metadata not loaded yet
            await consumer._client.force_metadata_update()
            partitions = [TopicPartition(t, p) for t in topics
                          for p in sorted(consumer.partitions_for_topic(t) or ())]
        ends = await consumer.end_offsets(partitions)
        committed = await asyncio.gather(*(consumer.committed(tp) for tp in partitions))
        rows = []
        for tp, done in zip(partitions, committed, strict=True):
            done = done if done is not None and done >= 0 else 0
            rows.append({"group": group, "topic": tp.topic, "partition": tp.partition,
                         "committed": done, "end": ends[tp], "lag": max(0, ends[tp] - done)})
        return rows

    async def close(self) -> None:
        consumers, self._consumers = list(self._consumers.values()), {}
        for consumer in consumers:
            await _quietly_stop(consumer)


async def _quietly_stop(consumer: AIOKafkaConsumer) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(consumer.stop(), 3)


async def collect(runtime: Observed, history_minutes: int = 0) -> StatusReport:
    """The service's status report (never raises: what cannot be read is a problem); with
    `history_minutes`, the probes' series of that many minutes too (`shared.ops_history`)."""
    s = runtime.settings
    report = StatusReport(s.service_name, history_minutes=history_minutes)
    checks, _ = await asyncio.gather(runtime.readiness(), _lag(runtime, report))
    report.sections["ready"] = checks
    for name, state in checks.items():
        if state != "ok":
            report.problems.append(f"{name} {state}")
    try:
        async with runtime.db.acquire(timeout=BROKER_TIMEOUT) as conn:
            await _outbox(conn, report, s.ops_max_outbox_age_seconds)
            await _dead_letters(conn, report)
            for probe in runtime.probes:
                await probe(conn, report)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        report.problems.append(f"database unreadable: {type(exc).__name__}")
    report.gauge("kcb_up", "1 when the service finds no problem to report.").add(
        0 if report.problems else 1)
    return report


async def _outbox(conn: Connection, report: StatusReport, max_age: float) -> None:
    row = await conn.fetchrow(Q.outbox_backlog)
    assert row is not None  # an aggregate: always one row
    report.sections["outbox"] = dict(row)
    report.gauge("kcb_outbox_backlog", "Outbox rows not yet published to Kafka.").add(
        row["backlog"]
    )
    report.gauge(
        "kcb_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row (0 when none)."
    ).add(row["oldest_age_seconds"])
    if row["oldest_age_seconds"] > max_age:
        report.problems.append(f"outbox: {row['backlog']} events waiting, oldest "
                               f"{row['oldest_age_seconds']:.0f}s")


async def _dead_letters(conn: Connection, report: StatusReport) -> None:
    rows = [dict(r) for r in await conn.fetch(Q.dead_letter_depth)]
    total = sum(r["pending"] for r in rows)
    report.sections["dead_letters"] = {"pending": total, "by_consumer": rows}
    g = report.gauge("kcb_dead_letters_pending", "Dead letters waiting for replay or discard.",
                     "consumer", "topic")
    for r in rows:
        g.add(r["pending"], r["consumer"], r["topic"])
    if total:
        report.problems.append(f"dead letters: {total} pending")


async def _lag(runtime: Observed, report: StatusReport) -> None:
    g = report.gauge("kcb_consumer_lag", "Events on the broker not yet consumed, per group and "
                     "topic partition.", "group", "topic", "partition")
    rows: list[dict[str, Any]] = []
    try:
        for consumer in runtime.consumers:
            rows += await asyncio.wait_for(
                runtime.lag_reader.lag(consumer.group_id, consumer.topics), BROKER_TIMEOUT)
    except Exception as exc:  # broker unreachable or paused: say so, reconnect next time
        await runtime.lag_reader.close()
        report.sections["lag"] = {"total": None, "partitions": []}
        report.problems.append(f"consumer lag unreadable: {type(exc).__name__}")
        return
    for r in rows:
        g.add(r["lag"], r["group"], r["topic"], r["partition"])
    total = sum(r["lag"] for r in rows)
    report.sections["lag"] = {"total": total, "partitions": rows}
    if total > runtime.settings.ops_max_lag:
        report.problems.append(f"consumer lag: {total} events behind")
