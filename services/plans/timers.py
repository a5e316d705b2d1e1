"""Durable timers: rows in `plan_timers`, claimed with `FOR UPDATE SKIP LOCKED` and marked
fired in the same transaction as the event they produce, so each fires once however many
plan instances run, and none is lost to a restart. A timer checks, when it fires, that what
it warns about is still true."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg

from services.plans import store
from services.plans.model import Timer
from services.plans.progress import evaluate
from services.plans.templates import parse as parse_template
from shared.db import Connection
from shared.events import Envelope
from shared.events.plans import PlanAdherenceGap, PlanSessionDue, RemsMonitoringFormOverdue
from shared.worker import listen_loop

log = logging.getLogger(__name__)


async def fire_due(pool: asyncpg.Pool, batch: int = 100) -> int:
    """Fire the timers that are due. Returns how many were claimed."""
    async with pool.acquire() as conn, conn.transaction():
        timers = await store.claim_due_timers(conn, batch)
        out: list[Envelope[Any]] = []
        for timer in timers:
            event = await _fire(conn, timer)
            if event is not None:
                out.append(event)
            await store.mark_fired(conn, timer)
        await store.emit(conn, out)
    return len(timers)


async def _fire(conn: Connection, timer: Timer) -> Envelope[Any] | None:
    """The event a timer gives, if what it warns about is still true."""
    plan = await store.lock_plan(conn, timer.plan_id)
    if timer.kind == "rems_overdue":
        form = await store.rems_form(conn, UUID(timer.ref))
        if form is None or form.filed_at is not None:
            return None
        return store.event(
            plan,
            RemsMonitoringFormOverdue(
                plan_id=plan.id, booking_id=form.booking_id, due_at=form.due_at
            ),
        )
    if plan.phase not in ("induction", "maintenance"):
        return None
    now = datetime.now(UTC)
    t = parse_template(plan.definition)
    prog = evaluate(
        t, await store.sessions_of_plan(conn, plan.id), plan.created_at, plan.phase, now
    )
    if timer.kind == "session_due":
        if prog.booked or prog.next_due_from is None or prog.next_due_by is None:  # set together
            return None  # a session got booked meanwhile
        return store.event(plan, PlanSessionDue(plan_id=plan.id, due_from=prog.next_due_from,
                                                due_by=prog.next_due_by))
    if prog.gap_due_at is None or prog.gap_due_at > now:
        return None  # a session was completed meanwhile
    allowed = (
        (prog.gap_due_at - prog.last_completed_at).days
        if prog.last_completed_at
        else t.max_gap_days
    )
    return store.event(
        plan,
        PlanAdherenceGap(
            plan_id=plan.id, last_session_at=prog.last_completed_at, allowed_days=allowed
        ),
    )


class TimerWorker:
    """Fires due timers; wakes when a timer is set and otherwise at the next due time."""

    def __init__(self, pool: asyncpg.Pool, schema: str, max_sleep: float = 5.0,
                 listen_pool: asyncpg.Pool | None = None):
        """`listen_pool`: direct sessions, for LISTEN (default `pool`)."""
        self.pool = pool
        self.listen_pool = listen_pool or pool
        self.channel = f"{schema}_timers"
        self.max_sleep = max_sleep
        self.fired = 0

    async def run(self) -> None:
        await listen_loop(self.listen_pool, self.channel, self._step, "timer worker")

    async def _step(self) -> float:
        claimed = await fire_due(self.pool)
        self.fired += claimed
        if claimed:
            return 0.0
        next_at = await store.next_timer_at(self.pool)
        if next_at is None:
            return self.max_sleep
        # not before 0.2 s: a due timer may be held by another instance or a consumer
        return min(self.max_sleep, max(0.2, (next_at - datetime.now(UTC)).total_seconds()))
