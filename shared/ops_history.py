"""The ops figures over the last hour, for the dashboard's charts (no Prometheus needed).

Consumer lag, the outbox's backlog and age, and dead letters pending are figures of a moment:
each service's runtime samples them every `SAMPLE_SECONDS` into its `ops_samples` table (one
row per period, whichever instance took it), so every instance draws the same picture. The
series a service's probes can count from their own tables (the notifier's texts per minute)
come from those tables. `GET /ops/history` answers both, ending with a point for now from a
fresh status report: the charts' last points are the figures `/ops/status` gives."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.db import Queries
from shared.ops_status import StatusReport, collect

Q = Queries(Path(__file__).with_name("ops_history.sql"))
Runtime = Any
"""A service's runtime (`shared.runtime.ServiceRuntime`; not imported: it imports this)."""
log = logging.getLogger(__name__)
SAMPLE_SECONDS = 30.0
KEEP_SECONDS = 3 * 3600.0
CHART_MINUTES = 60


def sample_of(report: StatusReport) -> dict[str, Any] | None:
    """The sampled figures of a status report, or None if its database could not be read."""
    outbox, letters = report.sections.get("outbox"), report.sections.get("dead_letters")
    if outbox is None or letters is None:
        return None
    return {"lag": report.sections.get("lag", {}).get("total"),
            "outbox_backlog": outbox["backlog"],
            "outbox_oldest_age_seconds": outbox["oldest_age_seconds"],
            "dead_letters": letters["pending"]}


async def record_samples(runtime: Runtime, every: float = SAMPLE_SECONDS) -> None:
    """Sample the figures every `every` seconds until cancelled (a failed round is logged and
    tried again at the next)."""
    while True:
        try:
            sample = sample_of(await collect(runtime))
            if sample is not None:
                async with runtime.db.acquire() as conn:
                    await conn.execute(
                        Q.record_sample,
                        every,
                        sample["lag"],
                        sample["outbox_backlog"],
                        sample["outbox_oldest_age_seconds"],
                        sample["dead_letters"],
                        KEEP_SECONDS,
                    )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("ops sample not recorded (%s)", type(exc).__name__)
        await asyncio.sleep(every)


async def history(runtime: Runtime, minutes: int = CHART_MINUTES) -> dict[str, Any]:
    """The samples of the last `minutes` and a point for now, and the probes' series."""
    report = await collect(runtime, history_minutes=minutes)
    async with runtime.db.acquire() as conn:
        samples = [dict(r) for r in await conn.fetch(Q.samples_since, minutes)]
    now = sample_of(report)
    if now is not None:
        samples.append({"at": datetime.now(UTC), **now})
    return {"service": report.service, "step_seconds": SAMPLE_SECONDS, "samples": samples,
            "series": report.series}
