"""Plans: booking events move plan progress. Plain functions on the consumer's connection,
inside its transaction; outgoing events go through the outbox, timers into `plan_timers`.

Every booking event (booked, moved, cancelled, checked in, completed, no-show) is applied
the same way: find the plan (starting one if the clinic wants that), record the session as
the event says if the event is newer than what we have, then recompute the plan's state
from all its sessions and announce what changed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg

from services.plans.progress import Progress, Session, evaluate, integration_booked_after
from services.plans.templates import DEFAULT_FOR_MODALITY, Template, latest
from shared.db import Queries
from shared.errors import Conflict, NotFound
from shared.events import Envelope, Event
from shared.events.booking import (PatientCheckedIn, PatientNoShow, PatientRegistered,
                                   SessionBooked, SessionCancelled, SessionCompleted,
                                   SessionRescheduled)
from shared.events.plans import (IntegrationSessionMissing, PlanCompleted, PlanPhaseChanged,
                                 PlanProgressed, PlanStarted, RemsMonitoringFormDue)
from shared.outbox import enqueue

PRODUCER = "plans"
Q = Queries(Path(__file__).with_name("queries.sql"))
STATUS_OF = {SessionBooked: "booked", SessionRescheduled: "booked", SessionCancelled: "cancelled",
             PatientCheckedIn: "arrived", SessionCompleted: "completed", PatientNoShow: "missed"}
ACTIVE = ("assessment", "induction", "maintenance")
ADOPT_DAYS = 120  # as in the adopt_sessions query


def _event(plan: asyncpg.Record, payload: Event, cause: Envelope | None = None) -> Envelope:
    return Envelope.new(payload, producer=PRODUCER, clinic_id=plan["clinic_id"],
                        patient_id=plan["patient_id"], cause=cause)


async def on_patient_registered(conn: asyncpg.Connection, env: Envelope) -> None:
    await conn.execute(Q.upsert_patient, env.patient_id, env.clinic_id)


async def start_plan(conn: asyncpg.Connection, clinic_id: UUID, patient_id: UUID, code: str,
                     started_at: datetime, cause: Envelope | None = None, *,
                     templates: dict | None = None, out: list | None = None,
                     adopt: bool = True) -> asyncpg.Record:
    """Start a plan from the newest version of a template (409 if one is already open).
    `templates` caches template lookups and `out` collects the events, for batches; `adopt`
    False when the caller knows the patient has no sessions waiting for a plan."""
    if templates is not None and (code, clinic_id) in templates:
        version, t = templates[(code, clinic_id)]
    else:
        version, t = await latest(conn, code, clinic_id)
        if templates is not None:
            templates[(code, clinic_id)] = (version, t)
    plan = await conn.fetchrow(Q.insert_plan, uuid4(), clinic_id, patient_id, code, version,
                               t.model_dump_json(), t.modality, t.target, started_at)
    if plan is None:
        raise Conflict(f"the patient already has an open plan for {t.modality}")
    if adopt:
        await conn.execute(Q.adopt_sessions, plan["id"], patient_id, clinic_id, started_at, t.modality)
    started = _event(plan, PlanStarted(plan_id=plan["id"], template=code, template_version=version,
                                       sessions_target=t.target), cause)
    if out is not None:
        out.append(started)
    else:
        await enqueue(conn, [started])
    return plan


async def on_booking_event(conn: asyncpg.Connection, env: Envelope, *, auto_create: bool = True,
                           now: datetime | None = None) -> None:
    """Apply one booking event to the patient's plan (idempotent, order-tolerant)."""
    await on_booking_events(conn, [env], auto_create=auto_create, now=now)


async def on_booking_events(conn: asyncpg.Connection, envs: list[Envelope], *,
                            auto_create: bool = True, now: datetime | None = None) -> None:
    """Apply a batch of booking events (in order) with a few statements for the whole
    batch; the result is the same as applying them one by one."""
    latest: dict[UUID, Envelope] = {}  # only the newest event of each booking matters
    for env in envs:
        seen = latest.get(env.payload.booking_id)
        if seen is None or env.payload.version > seen.payload.version:
            latest[env.payload.booking_id] = env
    events = list(latest.values())
    out: list[Envelope] = []
    plans = await _plans_for(conn, events, auto_create, out)
    applied = {r["booking_id"] for r in await conn.fetch(
        Q.upsert_sessions, [e.payload.booking_id for e in events],
        [plans[e.payload.booking_id]["id"] if plans.get(e.payload.booking_id) else None
         for e in events],
        [e.payload.session_type for e in events], [e.payload.is_dosing for e in events],
        [e.payload.starts_at for e in events], [STATUS_OF[type(e.payload)] for e in events],
        [e.payload.version for e in events], [e.clinic_id for e in events],
        [e.patient_id for e in events])}
    changed = [e for e in events if e.payload.booking_id in applied and plans.get(e.payload.booking_id)]
    if not changed:  # duplicates or older than what we know; or no plan (yet) to count them in
        await enqueue(conn, out)
        return
    now = now or datetime.now(UTC)
    touched: dict[UUID, tuple[asyncpg.Record, Envelope]] = {}
    for env in changed:  # each plan once, with the last event that moved it
        plan = plans[env.payload.booking_id]
        touched[plan["id"]] = (plan, env)
    out += await refresh_many(conn, list(touched.values()), now)
    for env in changed:
        if STATUS_OF[type(env.payload)] == "completed" and env.payload.is_dosing:
            out += await _after_dosing(conn, plans[env.payload.booking_id], env, now)
    await enqueue(conn, out)


async def _plans_for(conn: asyncpg.Connection, events: list[Envelope], auto_create: bool,
                     out: list[Envelope]) -> dict[UUID, asyncpg.Record | None]:
    """The plan each booking counts in: the one it is already in, else the patient's open
    plan for that treatment (started now if the clinic wants that), else none."""
    plans: dict[UUID, asyncpg.Record | None] = {
        r["booking_id"]: r for r in await conn.fetch(Q.plans_of_bookings, [e.payload.booking_id for e in events])}
    new = [e for e in events if e.payload.booking_id not in plans]
    open_plans: dict[UUID, list] = {}
    for row in await conn.fetch(Q.open_plans_of, list({e.patient_id for e in new})):
        open_plans.setdefault(row["patient_id"], []).append(row)
    creates: dict[UUID, bool] = {}
    templates: dict = {}
    started: dict[UUID, asyncpg.Record] = {}
    waiting = {r["patient_id"] for r in await conn.fetch(
        Q.patients_with_unplanned_sessions, list({e.patient_id for e in new}))} if new else set()
    for env in new:
        p = env.payload
        mine = [c for c in open_plans.get(env.patient_id, []) if c["clinic_id"] == env.clinic_id]
        if not p.is_dosing:
            plans[p.booking_id] = mine[-1] if mine else None
            continue
        plan = next((c for c in mine if c["modality"] == p.session_type), None)
        code = DEFAULT_FOR_MODALITY.get(p.session_type)
        if plan is None and code and STATUS_OF[type(p)] != "cancelled":
            if env.clinic_id not in creates:
                creates[env.clinic_id] = await conn.fetchval(Q.auto_create, env.clinic_id, auto_create)
            if creates[env.clinic_id]:
                plan = await start_plan(conn, env.clinic_id, env.patient_id, code, env.occurred_at,
                                        env, templates=templates, out=out,
                                        adopt=env.patient_id in waiting)
                open_plans.setdefault(env.patient_id, []).append(plan)
                started[env.patient_id] = plan
        plans[p.booking_id] = plan
    for env in new:  # earlier events of this batch that a plan started later would adopt
        plan, p = started.get(env.patient_id), env.payload
        if plan is not None and plans[p.booking_id] is None and \
                (not p.is_dosing or p.session_type == plan["modality"]) and \
                p.starts_at > plan["created_at"] - timedelta(days=ADOPT_DAYS):
            plans[p.booking_id] = plan
    return plans


async def refresh(conn: asyncpg.Connection, plan: asyncpg.Record, now: datetime,
                  cause: Envelope | None = None) -> list[Envelope]:
    """Recompute one plan from its sessions; save it, set its timers, return its events."""
    return await refresh_many(conn, [(plan, cause)], now)


async def refresh_many(conn: asyncpg.Connection, items: list[tuple[asyncpg.Record, Envelope | None]],
                       now: datetime) -> list[Envelope]:
    """Recompute plans from their sessions (one query for all), save them and their timers
    (one pipelined statement each), and return the events for what changed."""
    sessions: dict[UUID, list[Session]] = {}
    for r in await conn.fetch(Q.sessions_of_plans, [plan["id"] for plan, _ in items]):
        sessions.setdefault(r["plan_id"], []).append(
            Session(r["booking_id"], r["session_type"], r["is_dosing"], r["starts_at"], r["status"]))
    saves, sets, drops, out = [], [], [], []
    for plan, cause in items:
        t = Template.model_validate_json(plan["definition"])
        prog = evaluate(t, sessions.get(plan["id"], []), plan["created_at"], plan["phase"], now)
        saves.append((plan["id"], prog.phase, prog.booked, prog.completed, prog.cancelled,
                      prog.missed, prog.next_due_from, prog.next_due_by))
        _timer_changes(plan["id"], prog, sets, drops)
        out += _changes(plan, prog, cause)
    await conn.executemany(Q.save_progress, saves)
    if sets:
        await conn.executemany(Q.set_timer, sets)
    if drops:
        await conn.executemany(Q.drop_timer, drops)
    return out


def _changes(plan: asyncpg.Record, prog: Progress, cause: Envelope | None) -> list[Envelope]:
    out: list[Envelope] = []
    booking_id = cause.payload.booking_id if cause is not None else None
    before = (plan["sessions_booked"], plan["sessions_completed"], plan["sessions_cancelled"],
              plan["sessions_missed"])
    if prog.counts() != before or (plan["next_due_from"], plan["next_due_by"]) != \
            (prog.next_due_from, prog.next_due_by):
        out.append(_event(plan, PlanProgressed(
            plan_id=plan["id"], template=plan["template"], phase=prog.phase,
            sessions_target=prog.target, sessions_booked=prog.booked,
            sessions_completed=prog.completed, sessions_cancelled=prog.cancelled,
            sessions_missed=prog.missed, booking_id=booking_id,
            next_session_at=prog.next_session_at, next_due_from=prog.next_due_from,
            next_due_by=prog.next_due_by), cause))
    if prog.phase != plan["phase"]:
        # a batch may carry a plan through several phases at once: announce each step
        steps = [plan["phase"], prog.phase]
        if plan["phase"] == "assessment" and prog.phase in ("maintenance", "completed"):
            steps.insert(1, "induction")
        for before_phase, after_phase in zip(steps, steps[1:]):
            out.append(_event(plan, PlanPhaseChanged(plan_id=plan["id"], previous_phase=before_phase,
                                                     phase=after_phase), cause))
        if prog.phase == "completed":
            out.append(_event(plan, PlanCompleted(plan_id=plan["id"], template=plan["template"],
                                                  sessions_completed=prog.completed), cause))
    return out


def _timer_changes(plan_id: UUID, prog: Progress, sets: list, drops: list) -> None:
    active = prog.phase in ("induction", "maintenance")
    if active and prog.next_due_from is not None and prog.booked == 0:
        sets.append((plan_id, "session_due", "", prog.next_due_from))
    else:
        drops.append((plan_id, "session_due", ""))
    if active and prog.gap_due_at is not None:
        sets.append((plan_id, "adherence_gap", "", prog.gap_due_at))
    else:
        drops.append((plan_id, "adherence_gap", ""))


async def _sessions(conn: asyncpg.Connection, plan_id: UUID) -> list[Session]:
    return [Session(r["booking_id"], r["session_type"], r["is_dosing"], r["starts_at"], r["status"])
            for r in await conn.fetch(Q.sessions_of_plan, plan_id)]


async def _after_dosing(conn: asyncpg.Connection, plan: asyncpg.Record, env: Envelope,
                        now: datetime) -> list[Envelope]:
    """Integration and REMS follow-ups of a completed dosing session."""
    t = Template.model_validate_json(plan["definition"])
    p = env.payload
    out = []
    if t.integration_within_days:
        sessions = await _sessions(conn, plan["id"])
        dosing = next(s for s in sessions if s.booking_id == p.booking_id)
        if not integration_booked_after(sessions, dosing, t.integration_within_days):
            out.append(_event(plan, IntegrationSessionMissing(
                plan_id=plan["id"], booking_id=p.booking_id,
                within_days=t.integration_within_days), env))
    if t.rems:
        due = p.starts_at + timedelta(days=t.rems_form_within_days)
        if await conn.fetchval(Q.insert_rems_form, p.booking_id, plan["id"], due):
            await conn.execute(Q.set_timer, plan["id"], "rems_overdue", str(p.booking_id), due)
            out.append(_event(plan, RemsMonitoringFormDue(plan_id=plan["id"],
                                                          booking_id=p.booking_id, due_at=due), env))
    return out


async def file_rems_form(conn: asyncpg.Connection, clinic_id: UUID, plan_id: UUID,
                         booking_id: UUID, filed_by: str) -> dict:
    if await conn.fetchrow(Q.get_plan, plan_id, clinic_id) is None:
        raise NotFound("unknown plan")
    row = await conn.fetchrow(Q.file_rems_form, booking_id, plan_id, filed_by)
    if row is None:
        raise NotFound("no REMS form is due for this session in this plan")
    await conn.execute(Q.drop_timer, plan_id, "rems_overdue", str(booking_id))
    return dict(row)


async def discontinue(conn: asyncpg.Connection, clinic_id: UUID, plan_id: UUID) -> asyncpg.Record:
    before = await conn.fetchrow(Q.get_plan, plan_id, clinic_id)
    if before is None:
        raise NotFound("unknown plan")
    plan = await conn.fetchrow(Q.discontinue, plan_id, clinic_id)
    if plan is None:
        raise Conflict(f"a {before['phase']} plan cannot be discontinued")
    await conn.execute("DELETE FROM plan_timers WHERE plan_id = $1 AND fired_at IS NULL", plan_id)
    await enqueue(conn, [_event(plan, PlanPhaseChanged(plan_id=plan_id, previous_phase=before["phase"],
                                                       phase="discontinued"))])
    return plan

