"""Plans: booking events move plan progress. Plain functions on the consumer's connection,
inside its transaction; outgoing events go through the outbox, timers into `plan_timers`.

Every booking event (booked, moved, cancelled, checked in, completed, no-show) is applied
the same way: find the plan (starting one if the clinic wants that), record the session as
the event says if the event is newer than what we have, then recompute the plan's state
from all its sessions and announce what changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg

from services.plans.progress import Progress, Session, evaluate, integration_booked_after
from services.plans.templates import DEFAULT_FOR_MODALITY, latest_many
from services.plans.templates import parse as parse_template
from shared.db import Queries
from shared.errors import Conflict, NotFound
from shared.events import Envelope, Event
from shared.events.booking import (PatientCheckedIn, PatientNoShow,
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


@dataclass(frozen=True)
class NewPlan:
    """A plan to start: for whom, from which template, when, and the event that led to it."""

    clinic_id: UUID
    patient_id: UUID
    code: str
    started_at: datetime
    cause: Envelope | None = None


async def start_plan(conn: asyncpg.Connection, clinic_id: UUID, patient_id: UUID, code: str,
                     started_at: datetime, cause: Envelope | None = None) -> asyncpg.Record:
    """Start a plan from the newest version of a template (409 if one is already open)."""
    out: list[Envelope] = []
    [plan] = await start_plans(conn, [NewPlan(clinic_id, patient_id, code, started_at, cause)],
                               templates={}, out=out, adopting={patient_id})
    await enqueue(conn, out)
    return plan


async def start_plans(conn: asyncpg.Connection, wanted: list[NewPlan], *, templates: dict,
                      out: list[Envelope], adopting: set[UUID]) -> list[asyncpg.Record]:
    """Start plans (one statement for all), in `wanted` order; 409 if one is already open.
    `templates` caches template lookups, `out` collects the `PlanStarted` events, and plans
    of `adopting` patients take their sessions that are waiting for a plan."""
    missing = list({(w.code, w.clinic_id) for w in wanted} - set(templates))
    if missing:
        templates.update(await latest_many(conn, missing))
    chosen = [templates[(w.code, w.clinic_id)] for w in wanted]
    ids = [uuid4() for _ in wanted]
    rows = {r["id"]: r for r in await conn.fetch(
        Q.insert_plans, ids, [w.clinic_id for w in wanted], [w.patient_id for w in wanted],
        [w.code for w in wanted], [v for v, _ in chosen], [t.model_dump_json() for _, t in chosen],
        [t.modality for _, t in chosen], [t.target for _, t in chosen],
        [w.started_at for w in wanted])}
    plans = []
    for plan_id, w, (version, t) in zip(ids, wanted, chosen):
        plan = rows.get(plan_id)
        if plan is None:
            raise Conflict(f"the patient already has an open plan for {t.modality}")
        if w.patient_id in adopting:
            await conn.execute(Q.adopt_sessions, plan_id, w.patient_id, w.clinic_id,
                               w.started_at, t.modality)
        out.append(_event(plan, PlanStarted(plan_id=plan_id, template=w.code,
                                            template_version=version, sessions_target=t.target),
                          w.cause))
        plans.append(plan)
    return plans


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
    creates = {r["clinic_id"]: r["auto_create"] for r in await conn.fetch(
        Q.auto_create_of, list({e.clinic_id for e in new}), auto_create)} if new else {}
    waiting = {r["patient_id"] for r in await conn.fetch(
        Q.patients_with_unplanned_sessions, list({e.patient_id for e in new}))} if new else set()
    to_start: dict[tuple[UUID, str], NewPlan] = {}  # one new plan per patient and treatment
    for env in new:
        p = env.payload
        mine = [c for c in open_plans.get(env.patient_id, []) if c["clinic_id"] == env.clinic_id]
        if not p.is_dosing:
            plans[p.booking_id] = mine[-1] if mine else None
            continue
        plan = next((c for c in mine if c["modality"] == p.session_type), None)
        code = DEFAULT_FOR_MODALITY.get(p.session_type)
        plans[p.booking_id] = plan
        if plan is None and code and STATUS_OF[type(p)] != "cancelled" and creates[env.clinic_id]:
            to_start.setdefault((env.patient_id, p.session_type),
                                NewPlan(env.clinic_id, env.patient_id, code, env.occurred_at, env))
    started: dict[UUID, asyncpg.Record] = {}
    if to_start:
        for plan in await start_plans(conn, list(to_start.values()), templates={}, out=out,
                                      adopting=waiting):
            started[plan["patient_id"]] = plan
    for env in new:  # the new plans take this batch's bookings that had none
        plan, p = started.get(env.patient_id), env.payload
        if plan is None or plans[p.booking_id] is not None:
            continue
        if p.is_dosing and p.session_type == plan["modality"] or not p.is_dosing and \
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
    (one statement each for all), and return the events for what changed."""
    sessions: dict[UUID, list[Session]] = {}
    for r in await conn.fetch(Q.sessions_of_plans, [plan["id"] for plan, _ in items]):
        sessions.setdefault(r["plan_id"], []).append(
            Session(r["booking_id"], r["session_type"], r["is_dosing"], r["starts_at"], r["status"]))
    saves, sets, drops, out = [], [], [], []
    for plan, cause in items:
        t = parse_template(plan["definition"])
        prog = evaluate(t, sessions.get(plan["id"], []), plan["created_at"], plan["phase"], now)
        saves.append((plan["id"], prog.phase, prog.booked, prog.completed, prog.cancelled,
                      prog.missed, prog.next_due_from, prog.next_due_by))
        _timer_changes(plan["id"], prog, sets, drops)
        out += _changes(plan, prog, cause)
    await conn.execute(Q.save_progress_many, *_columns(saves, 8))
    if sets:
        await conn.execute(Q.set_timers, *_columns(sets, 4))
    if drops:
        await conn.execute(Q.drop_timers, *_columns(drops, 3))
    return out


def _columns(rows: list[tuple], width: int) -> list[list]:
    """Rows as columns, for statements that take one array per column."""
    return [list(c) for c in zip(*rows)] if rows else [[] for _ in range(width)]


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
    t = parse_template(plan["definition"])
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

