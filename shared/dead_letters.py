"""Dead letters for ops: list, show (patient data redacted), replay to the source topic once
the cause is fixed, or discard with a reason. Every action is recorded with who and when.

A replay puts the original bytes back on the source topic through the outbox, in the same
transaction that marks the letter replayed, so a replay is never lost nor done twice. It
carries the failing consumer's name (header `dlq.consumer`, with `dlq.replay_of`): the other
consumer groups of that topic skip it (`shared.consumer`); the one that failed handles it now,
or dead-letters it again (a new letter) if the cause is not fixed after all.

"Replay all" is a job (`start_replay_job`): the letters pending when it starts are snapshot,
and `replay_job_step`, run by each service's runtime, replays them a bounded batch per
transaction, so it never replays a letter its own replays created, and any instance (or the
same one after a restart) finishes it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import asyncpg

from shared.db import Connection, Queries
from shared.errors import Conflict, NotFound
from shared.outbox import enqueue_raw

Q = Queries(Path(__file__).with_name("ops.sql"))
log = logging.getLogger(__name__)

# Payload fields shown as they are: identifiers, times, codes. Everything else (names,
# phone numbers, addresses, message bodies, free text) is redacted.
_SAFE_SUFFIXES = ("_id", "_ids", "_at", "_type", "_version", "_code", "_kind", "_status")
_SAFE_FIELDS = {"status", "kind", "version", "language", "timezone", "site_timezone", "is_dosing",
                "dosing", "segments", "phase", "permanent", "attempt", "session_type", "event_type"}
_ENVELOPE_FIELDS = ("event_id", "event_type", "schema_version", "occurred_at", "producer",
                    "clinic_id", "patient_id", "correlation_id", "causation_id")
REDACTED = "***"


def _safe(name: str) -> bool:
    return name in _SAFE_FIELDS or name.endswith(_SAFE_SUFFIXES)


def redact(value: Any, name: str = "") -> Any:
    """`value` with every field that may hold patient data replaced by `***`."""
    if isinstance(value, dict):
        return {k: redact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, name) for v in value]
    if value is None or isinstance(value, bool) or _safe(name):
        return value
    return REDACTED


def describe(value: bytes | None) -> dict[str, Any]:
    """What a dead letter's bytes are, with patient data redacted: the envelope's metadata and
    its payload's fields, or only the size when the bytes are not a JSON object."""
    try:
        doc = json.loads(value or b"")
    except ValueError:
        return {"parsable": False, "size": len(value or b"")}
    if not isinstance(doc, dict):
        return {"parsable": False, "size": len(value or b"")}
    meta = {k: doc.get(k) for k in _ENVELOPE_FIELDS if k in doc}
    payload = doc.get("payload")
    return {"parsable": True, **meta, "payload": redact(payload) if payload is not None else None}


def _summary(row: asyncpg.Record) -> dict[str, Any]:
    about = describe(row["value"])
    return {"id": row["id"], "consumer": row["consumer"], "topic": row["topic"],
            "partition": row["partition"], "offset": row["offset"],
            "error": row["error"], "created_at": row["created_at"], "status": row["status"],
            "resolved_at": row["resolved_at"], "resolved_by": row["resolved_by"],
            "event_type": about.get("event_type"), "event_id": about.get("event_id")}


async def list_letters(conn: Connection, *, status: str | None = "pending",
                       after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
    """Dead letters in id order (by default the pending ones), without their bytes."""
    return [_summary(r) for r in await conn.fetch(Q.list_dead_letters, status, after, limit)]


async def show_letter(conn: Connection, letter_id: int) -> dict[str, Any]:
    """One dead letter: where it came from, the error, the redacted event, the actions taken."""
    row = await conn.fetchrow(Q.get_dead_letter, letter_id)
    if row is None:
        raise NotFound(f"no dead letter {letter_id}")
    actions = [dict(a) for a in await conn.fetch(Q.dead_letter_actions, letter_id)]
    return {**_summary(row), "event": describe(row["value"]), "actions": actions}


async def replay_letter(conn: Connection, letter_id: int, *, actor: str,
                        topic_prefix: str = "") -> None:
    """Put a pending letter's original message back on its source topic (through the outbox),
    for its consumer only."""
    async with conn.transaction():
        await _replay(conn, await _lock_pending(conn, letter_id), actor, topic_prefix)


async def _replay(conn: Connection, row: asyncpg.Record, actor: str, topic_prefix: str,
                  reason: str | None = None) -> None:
    source = row["topic"].removeprefix(topic_prefix)
    await enqueue_raw(conn, source, row["key"], row["value"], {
        "dlq.replay_of": str(row["id"]), "dlq.consumer": row["consumer"]})
    await conn.execute(Q.resolve_dead_letter, row["id"], "replayed", actor, reason)


async def start_replay_job(conn: Connection, *, actor: str, consumer: str | None,
                           batch_size: int) -> dict[str, Any]:
    """Start replaying every letter pending now (of `consumer`, if given): returns the job.
    One job runs at a time: Conflict (naming it) while another does."""
    while True:
        try:
            async with conn.transaction():
                job = await conn.fetchrow(Q.start_replay_job, consumer, actor, batch_size)
                assert job is not None  # INSERT ... RETURNING
                await conn.execute(Q.set_replay_job_total, job["id"], job["total"])
            return await get_replay_job(conn, job["id"])
        except asyncpg.UniqueViolationError:
            running = await conn.fetchval(Q.running_replay_job)
            if running is not None:  # (else it has just finished: try again)
                raise Conflict(f"replay job {running} is still running", job_id=running) from None


async def get_replay_job(conn: Connection, job_id: int) -> dict[str, Any]:
    """A replay job and how far it got."""
    row = await conn.fetchrow(Q.get_replay_job, job_id)
    if row is None:
        raise NotFound(f"no replay job {job_id}")
    return _job(row)


async def list_replay_jobs(conn: Connection, limit: int) -> list[dict[str, Any]]:
    """The latest replay jobs, newest first."""
    return [_job(r) for r in await conn.fetch(Q.list_replay_jobs, limit)]


def _job(row: asyncpg.Record) -> dict[str, Any]:
    return {**dict(row), "remaining": row["total"] - row["replayed"] - row["skipped"]}


async def replay_job_step(pool: asyncpg.Pool, *, topic_prefix: str = "") -> bool:
    """Replay the next batch of the running job, in one transaction, unless there is none or
    another instance is at it. Returns whether more is to be done at once. Letters resolved
    since the job started are skipped."""
    async with pool.acquire() as conn, conn.transaction():
        job = await conn.fetchrow(Q.lock_running_replay_job)
        if job is None:
            return False
        ids = [r["dead_letter_id"] for r in
               await conn.fetch(Q.take_replay_batch, job["id"], job["batch_size"])]
        rows = await conn.fetch(Q.lock_pending_dead_letters, ids) if ids else []
        for row in rows:
            await _replay(conn, row, job["actor"], topic_prefix, f"replay job {job['id']}")
        done = len(ids) < job["batch_size"]
        await conn.execute(Q.advance_replay_job, job["id"], len(rows), len(ids) - len(rows), done)
    if done:
        log.info("replay job %d done", job["id"])
    return not done


async def discard_letter(conn: Connection, letter_id: int, *, actor: str,
                         reason: str) -> None:
    """Give up on a pending letter, saying why."""
    async with conn.transaction():
        await _lock_pending(conn, letter_id)
        await conn.execute(Q.resolve_dead_letter, letter_id, "discarded", actor, reason)


async def _lock_pending(conn: Connection, letter_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(Q.lock_pending_dead_letter, letter_id)
    if row is None:
        if await conn.fetchrow(Q.get_dead_letter, letter_id) is None:
            raise NotFound(f"no dead letter {letter_id}")
        raise Conflict(f"dead letter {letter_id} was already replayed or discarded")
    return row
