"""Prometheus metrics every service exports at `/metrics`.

Two kinds: counters and histograms that the code moves as it works (events consumed and
published, handler latency, HTTP requests), and gauges read at scrape time from the
service's database and the broker (outbox backlog, dead letters, consumer lag, and each
service's own: texts pending/late, timers pending...), which are the same whichever
instance or worker process answers the scrape.

With several HTTP worker processes (`http_workers` > 1) the counters are aggregated across
them through `PROMETHEUS_MULTIPROC_DIR`, which `shared.serve` sets up.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

EVENTS_CONSUMED = Counter(
    "kcb_events_consumed_total", "Events taken from Kafka by a consumer group, by outcome "
    "(handled, duplicates, ignored, dead_lettered).", ["consumer", "event_type", "outcome"])
EVENTS_PUBLISHED = Counter(
    "kcb_events_published_total", "Outbox rows published to Kafka.", ["topic", "event_type"])
BATCH_SECONDS = Histogram(
    "kcb_consumer_batch_seconds", "Time to process one consumed batch (parse, handlers, commit).",
    ["consumer"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
HTTP_REQUESTS = Counter(
    "kcb_http_requests_total", "HTTP requests answered, by route template and status code.",
    ["method", "route", "status"])
HTTP_SECONDS = Histogram(
    "kcb_http_request_seconds", "HTTP request latency by route template.", ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))


@dataclass
class Gauge:
    """One scrape-time gauge family with its samples."""

    name: str
    help: str
    labels: tuple[str, ...] = ()
    samples: list[tuple[tuple[str, ...], float]] = field(default_factory=list)

    def add(self, value: float, *label_values: str) -> Gauge:
        self.samples.append((tuple(str(v) for v in label_values), float(value)))
        return self

    def family(self) -> GaugeMetricFamily:
        fam = GaugeMetricFamily(self.name, self.help, labels=list(self.labels))
        for labels, value in self.samples:
            fam.add_metric(list(labels), value)
        return fam


class _Static:
    """A collector that yields gauge families computed beforehand."""

    def __init__(self, gauges: Iterable[Gauge]) -> None:
        self.gauges = list(gauges)

    def collect(self) -> list[GaugeMetricFamily]:
        return [g.family() for g in self.gauges]


def render(gauges: Iterable[Gauge]) -> bytes:
    """The Prometheus text exposition of this process's (or all workers') counters plus
    the scrape-time `gauges`."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        counters = generate_latest(registry)
    else:
        counters = generate_latest(REGISTRY)
    extra = CollectorRegistry()
    extra.register(_Static(gauges))
    return counters + generate_latest(extra)
