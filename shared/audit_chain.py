"""The audit trail's hash chain, per service (schema) and UTC day, its verification, and the
retention purge.

Entries are inserted without a hash, so that a change and its entry commit together without
waiting on one another. The sealer (every second, one instance at a time) then appends a link
per new entry to `audit_seals`, in the order the entries became visible:
`hash = sha256(previous link's hash | canonical entry)`, the first link of a day starting from
`GENESIS`. An entry edited, deleted or slipped in afterwards, or a link edited or removed,
breaks the chain at that point: `verify` walks it and reports the first broken link."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from shared.audit import Entry, Q

log = logging.getLogger(__name__)
GENESIS = "0" * 64
SEAL_BATCH = 5000
SEAL_WINDOW = 1_000
"""Ids below the last sealed one looked at on each pass (an entry whose transaction committed
after this many later entries were sealed waits for a wide pass)."""
WIDE_WINDOW = 100_000
"""Ids below the last sealed one looked at on a wide pass (an entry committed later still is
reported unsealed by `verify`)."""
UNSEALED_AFTER_SECONDS = 120.0
SEAL_CHUNK = 100
"""Entries hashed between yields to the event loop: a pass seals a second's entries (a
thousand at 1,000 bookings/s, ~20 ms of Python) in the process that also answers requests,
which would otherwise all wait that long (booking's open-loop p99); ~2 ms at a time instead."""


def canonical(entry: Entry) -> bytes:
    """The bytes an entry's link hashes: every column, in a fixed order and form."""
    def text(value: Any) -> Any:
        if value is None or isinstance(value, (int, str)):
            return value
        if isinstance(value, datetime):
            return value.astimezone(UTC).isoformat(timespec="microseconds")
        if isinstance(value, list):
            return [str(v) for v in value]
        return str(value)

    return json.dumps([text(v) for v in (entry.id, *entry.record())],
                      separators=(",", ":")).encode()


async def sealing(pool: asyncpg.Pool, interval: float = 1.0, wide_every: int = 60) -> None:
    """Seal every `interval` seconds, looking far back once every `wide_every` passes (a
    worker of the runtime)."""
    passes = 0
    while True:
        await asyncio.sleep(interval)
        try:
            await seal(pool, WIDE_WINDOW if passes % wide_every == 0 else SEAL_WINDOW)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("audit: sealing failed (%s)", type(exc).__name__)
        passes += 1


def link(prev_hash: str, entry: Entry) -> str:
    """The hash of `entry`'s link after `prev_hash`."""
    return hashlib.sha256(prev_hash.encode() + b"|" + canonical(entry)).hexdigest()


def day_of(entry: Entry) -> date:
    return entry.at.astimezone(UTC).date()


async def seal(pool: asyncpg.Pool, window: int = WIDE_WINDOW) -> int:
    """Append links for the entries not sealed yet, from `window` ids below the last sealed
    one (one instance at a time). Returns how many."""
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval(Q.lock_sealer):
            return 0
        last = await conn.fetchval(Q.last_sealed)
        rows = await conn.fetch(Q.entries_to_seal, max(0, last - window), SEAL_BATCH)
        if not rows:
            return 0
        days = sorted({r["at"].astimezone(UTC).date() for r in rows})
        heads = {r["day"]: (r["seq"], r["hash"]) for r in await conn.fetch(Q.chain_heads, days)}
        await conn.execute(Q.insert_seals, *await links(rows, heads))
        return len(rows)


async def links(rows: list[Any], heads: dict[date, tuple[int, str]]) -> tuple[list[Any], ...]:
    """The links of `rows` (audit_log rows, in id order) after each day's head in `heads`
    (day: (seq, hash); updated): the columns of `insert_seals` (entry ids, days, seqs,
    previous hashes, hashes). Yields to the event loop every `SEAL_CHUNK` rows."""
    ids, on, seqs, prevs, hashes = [], [], [], [], []
    for i, row in enumerate(rows):
        if i and i % SEAL_CHUNK == 0:
            await asyncio.sleep(0)
        e = Entry.from_row(row)
        day = day_of(e)
        seq, prev = heads.get(day, (0, GENESIS))
        digest = link(prev, e)
        heads[day] = (seq + 1, digest)
        ids.append(e.id)
        on.append(day)
        seqs.append(seq + 1)
        prevs.append(prev)
        hashes.append(digest)
    return ids, on, seqs, prevs, hashes


async def verify(pool: asyncpg.Pool, since: date | None = None) -> dict[str, Any]:
    """Walk every day's chain (from `since`): `ok`, the links checked, the first broken link
    (day, seq, entry id, why) and entries older than two minutes that no link covers."""
    checked = 0
    async with pool.acquire() as conn:
        for (day,) in await conn.fetch(Q.sealed_days, since or date(1900, 1, 1)):
            prev, expected_seq = GENESIS, 1
            for row in await conn.fetch(Q.chain_of_day, day):
                checked += 1
                problem = _broken(row, prev, expected_seq)
                if problem:
                    return {"ok": False, "checked": checked, "first_broken": {
                        "day": day.isoformat(), "seq": row["seq"], "entry_id": row["entry_id"],
                        "reason": problem}, "unsealed": None}
                prev, expected_seq = row["hash"], expected_seq + 1
        unsealed = await conn.fetchrow(Q.unsealed_entries, UNSEALED_AFTER_SECONDS)
        assert unsealed is not None  # an aggregate: always one row
    loose = ({"count": unsealed["count"], "first_id": unsealed["first_id"]}
             if unsealed["count"] else None)
    return {"ok": loose is None, "checked": checked, "first_broken": None, "unsealed": loose}


def _broken(row: Any, prev: str, expected_seq: int) -> str | None:
    """Why a link does not hold, or None."""
    if row["seq"] != expected_seq:
        return f"link {expected_seq} is missing"
    if row["prev_hash"] != prev:
        return "the link does not follow the previous one"
    if row["id"] is None:
        return "the entry was deleted"
    if link(prev, Entry.from_row(row)) != row["hash"]:
        return "the entry was changed"
    return None


async def purge(pool: asyncpg.Pool, retention_days: int, now: datetime | None = None) -> int:
    """Delete the whole days older than `retention_days` (the database refuses less than a
    year), recording the purge in the same transaction. Returns the entries deleted."""
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=retention_days)
    async with pool.acquire() as conn, conn.transaction():
        deleted: int = await conn.fetchval(Q.purge_before, cutoff)
        if deleted:
            day = cutoff.astimezone(UTC).date().isoformat()
            await conn.execute(Q.insert_entry, *Entry(
                at=now, clinic_id=None, actor_clinic_id=None, actor_kind="system",
                staff_id=None, actor_label="retention", role=None, action="audit_purge",
                resource=f"DELETE audit_log before {day} ({deleted} entries)", patient_ids=[],
                outcome="allowed", status=None, client=None, correlation_id=None).record())
    if deleted:
        log.info("audit: purged %d entries before %s", deleted, cutoff.date())
    return deleted


async def keep(pool: asyncpg.Pool, retention_days: int, interval: float) -> None:
    """Purge past `retention_days` every `interval` seconds (a worker of the runtime)."""
    while True:
        try:
            await purge(pool, retention_days)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("audit: purge failed (%s)", type(exc).__name__)
        await asyncio.sleep(interval)
