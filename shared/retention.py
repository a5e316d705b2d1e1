"""Retention: tables that would grow forever (processed events, sent outbox rows, resolved
dead letters, and a service's own, e.g. the notifier's recorded texts) are purged by each
service's runtime every `retention_interval_seconds`, a small batch per statement, so that
several instances purge side by side and no statement holds many locks for long."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg

from shared.db import Queries
from shared.settings import ServiceSettings

Q = Queries(Path(__file__).with_name("retention.sql"))
log = logging.getLogger(__name__)
DAY = 86400.0


@dataclass(frozen=True)
class Purge:
    """One table family's purge: `query` deletes up to $2 rows older than $1 seconds before
    $3 (NULL: now), skipping rows locked by another instance."""

    table: str
    query: str
    days: float


def shared_purges(settings: ServiceSettings) -> list[Purge]:
    """The purges of the tables every service has, with the periods from its settings."""
    return [
        Purge(
            "processed_events", Q.purge_processed_events, settings.retention_processed_events_days
        ),
        Purge("outbox", Q.purge_sent_outbox, settings.retention_outbox_days),
        Purge("dead_letters", Q.purge_resolved_dead_letters, settings.retention_dead_letters_days),
    ]


async def purge(pool: asyncpg.Pool, purges: list[Purge], *, batch_size: int,
                now: datetime | None = None, pause: float = 0.0) -> dict[str, int]:
    """Delete every row past its period, `batch_size` rows per statement (each its own
    transaction), counting back from `now` (default: the database's clock). Returns the rows
    deleted per table."""
    deleted = {}
    for p in purges:
        deleted[p.table] = 0
        while True:
            async with pool.acquire() as conn:
                status = await conn.execute(p.query, p.days * DAY, batch_size, now)
            n = int(status.split()[-1])
            deleted[p.table] += n
            if n < batch_size:
                break
            await asyncio.sleep(pause)
    return deleted


async def run_retention(pool: asyncpg.Pool, purges: list[Purge], *, batch_size: int,
                        interval: float) -> None:
    """Purge every `interval` seconds until cancelled; a failed round is tried again at the
    next one."""
    while True:
        try:
            deleted = await purge(pool, purges, batch_size=batch_size, pause=0.05)
            if any(deleted.values()):
                log.info("retention: deleted %s", ", ".join(
                    f"{n} from {table}" for table, n in deleted.items() if n))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("retention round failed (%s); trying again in %.0fs",
                        type(exc).__name__, interval)
        await asyncio.sleep(interval)
