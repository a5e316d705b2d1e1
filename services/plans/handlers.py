"""Plans: booking events move plan progress. Plain functions on the consumer's connection,
inside its transaction; outgoing events go through the outbox, timers into `plan_timers`
(the SQL is services/plans/store.py; where a plan stands is services/plans/progress.py).

Every booking event (booked, moved, cancelled, checked in, completed, no-show) is applied
the same way: find the plan (starting one if the clinic wants that), record the session as
the event says if the event is newer than what we have, then recompute the plan's state
from all its sessions and announce what changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from uuid import UUID, uuid4

from services.plans import store
from services.plans.model import Plan, RemsForm
from services.plans.progress import Progress, evaluate, integration_booked_after
from services.plans.templates import DEFAULT_FOR_MODALITY, Template
from services.plans.templates import parse as parse_template
from shared.db import Connection
from shared.errors import Conflict, NotFound
from shared.events import Envelope, Event
from shared.events.booking import (
    PatientCheckedIn,
    PatientNoShow,
    PatientRegistered,
    SessionBooked,
    SessionCancelled,
    SessionCompleted,
    SessionRescheduled,
)
from shared.events.plans import (
    IntegrationSessionMissing,
    PlanCompleted,
    PlanPhaseChanged,
    PlanProgressed,
    PlanStarted,
    RemsMonitoringFormDue,
)

STATUS_OF: dict[type[Event], str] = {
    SessionBooked: "booked", SessionRescheduled: "booked", SessionCancelled: "cancelled",
    PatientCheckedIn: "arrived", SessionCompleted: "completed", PatientNoShow: "missed"}
ADOPT_DAYS = 120  # as in the adopt_sessions query

Templates = dict[tuple[str, UUID], tuple[int, Template]]


async def on_patient_registered(conn: Connection, env: Envelope[PatientRegistered]) -> None:
    await store.upsert_patient(conn, env.clinic_id, env.patient)


# --- starting plans ---------------------------------------------------------------------


@dataclass(frozen=True)
class NewPlan:
    """A plan to start: for whom, from which template, when, and the event that led to it."""

    clinic_id: UUID
    patient_id: UUID
    code: str
    started_at: datetime
    cause: Envelope[Any] | None = None


async def latest_templates(conn: Connection, wanted: list[tuple[str, UUID]]) -> Templates:
    """The newest version of each template for each clinic (the clinic's own version first),
    for several (code, clinic) pairs in one query; 404 if one is unknown."""
    found = await store.latest_templates(conn, wanted)
    if any(key not in found for key in wanted):
        raise NotFound("unknown plan template", field="template")
    return {key: (version, parse_template(definition))
            for key, (version, definition) in found.items()}


async def start_plan(conn: Connection, clinic_id: UUID, patient_id: UUID, code: str,
                     started_at: datetime, cause: Envelope[Any] | None = None) -> Plan:
    """Start a plan from the newest version of a template (409 if one is already open)."""
    out: list[Envelope[Any]] = []
    [plan] = await start_plans(conn, [NewPlan(clinic_id, patient_id, code, started_at, cause)],
                               out=out, adopting={patient_id})
    await store.emit(conn, out)
    return plan


async def start_plans(conn: Connection, wanted: list[NewPlan], *, out: list[Envelope[Any]],
                      adopting: set[UUID]) -> list[Plan]:
    """Start plans (one statement for all), in `wanted` order; 409 if one is already open.
    `out` collects the `PlanStarted` events, and plans of `adopting` patients take their
    sessions that are waiting for a plan."""
    templates = await latest_templates(conn, list({(w.code, w.clinic_id) for w in wanted}))
    chosen = [templates[(w.code, w.clinic_id)] for w in wanted]
    ids = [uuid4() for _ in wanted]
    inserted = await store.insert_plans(
        conn,
        [
            (
                plan_id,
                w.clinic_id,
                w.patient_id,
                w.code,
                version,
                t.model_dump_json(),
                t.modality,
                t.target,
                w.started_at,
            )
            for plan_id, w, (version, t) in zip(ids, wanted, chosen, strict=True)
        ],
    )
    plans = []
    for plan_id, w, (version, t) in zip(ids, wanted, chosen, strict=True):
        plan = inserted.get(plan_id)
        if plan is None:
            raise Conflict(f"the patient already has an open plan for {t.modality}")
        if w.patient_id in adopting:
            await store.adopt_sessions(conn, plan, w.started_at)
        out.append(store.event(plan, PlanStarted(plan_id=plan_id, template=w.code,
                                                 template_version=version,
                                                 sessions_target=t.target), w.cause))
        plans.append(plan)
    return plans


# --- booking events ---------------------------------------------------------------------


async def on_booking_event(conn: Connection, env: Envelope[Any], *, auto_create: bool = True,
                           now: datetime | None = None) -> None:
    """Apply one booking event to the patient's plan (idempotent, order-tolerant)."""
    await on_booking_events(conn, [env], auto_create=auto_create, now=now)


def newest_per_booking(envs: list[Envelope[Any]]) -> list[Envelope[Any]]:
    """The newest event of each booking (only it matters), in the order bookings first came."""
    latest: dict[UUID, Envelope[Any]] = {}
    for env in envs:
        seen = latest.get(env.payload.booking_id)
        if seen is None or env.payload.version > seen.payload.version:
            latest[env.payload.booking_id] = env
    return list(latest.values())


async def on_booking_events(conn: Connection, envs: list[Envelope[Any]], *,
                            auto_create: bool = True, now: datetime | None = None) -> None:
    """Apply a batch of booking events (in order) with a few statements for the whole
    batch; the result is the same as applying them one by one."""
    events = newest_per_booking(envs)
    out: list[Envelope[Any]] = []
    plans = await _plans_for(conn, events, auto_create, out)
    applied = await store.upsert_sessions(conn, [
        (e.payload.booking_id, plan.id if (plan := plans.get(e.payload.booking_id)) else None,
         e.payload.session_type, e.payload.is_dosing, e.payload.starts_at,
         STATUS_OF[type(e.payload)], e.payload.version, e.clinic_id, e.patient_id)
        for e in events])
    # duplicates or older than what we know change nothing; nor do sessions with no plan (yet)
    changed = [e for e in events
               if e.payload.booking_id in applied and plans.get(e.payload.booking_id)]
    if changed:
        now = now or datetime.now(UTC)
        touched: dict[UUID, tuple[Plan, Envelope[Any] | None]] = {}
        for env in changed:  # each plan once, with the last event that moved it
            plan = plans[env.payload.booking_id]
            assert plan is not None
            touched[plan.id] = (plan, env)
        out += await refresh_many(conn, list(touched.values()), now)
        for env in changed:
            plan = plans[env.payload.booking_id]
            if STATUS_OF[type(env.payload)] == "completed" and env.payload.is_dosing and plan:
                out += await _after_dosing(conn, plan, env, now)
    await store.emit(conn, out)


async def _plans_for(conn: Connection, events: list[Envelope[Any]], auto_create: bool,
                     out: list[Envelope[Any]]) -> dict[UUID, Plan | None]:
    """The plan each booking counts in: the one it is already in, else the patient's open
    plan for that treatment (started now if the clinic wants that), else none."""
    plans: dict[UUID, Plan | None] = dict(
        await store.plans_of_bookings(conn, [e.payload.booking_id for e in events]))
    new = [e for e in events if e.payload.booking_id not in plans]
    if not new:
        return plans
    patients = list({e.patient for e in new})
    open_plans = await store.open_plans_of(conn, patients)
    creates = await store.auto_create_of(conn, list({e.clinic_id for e in new}), auto_create)
    waiting = await store.patients_with_unplanned_sessions(conn, patients)
    to_start = choose_plans(new, open_plans, creates, plans)
    if to_start:
        started = {plan.patient_id: plan for plan in await start_plans(
            conn, to_start, out=out, adopting=waiting)}
        adopt_into_new_plans(new, started, plans)
    return plans


def choose_plans(new: list[Envelope[Any]], open_plans: dict[UUID, list[Plan]],
                 creates: dict[UUID, bool], plans: dict[UUID, Plan | None]) -> list[NewPlan]:
    """Set the plan of each booking new here (`plans`): a dosing session counts in the
    patient's open plan for its treatment, another session in their latest open plan. The
    plans to start: one per patient and treatment for a dosing session with no plan (not
    cancelled), when its clinic starts plans on its own (`creates`)."""
    to_start: dict[tuple[UUID, str], NewPlan] = {}
    for env in new:
        p = env.payload
        mine = [c for c in open_plans.get(env.patient, []) if c.clinic_id == env.clinic_id]
        if not p.is_dosing:
            plans[p.booking_id] = mine[-1] if mine else None
            continue
        plan = next((c for c in mine if parse_template(c.definition).counts(p.session_type)),
                    None)
        code = DEFAULT_FOR_MODALITY.get(p.session_type)
        plans[p.booking_id] = plan
        if plan is None and code and STATUS_OF[type(p)] != "cancelled" and creates[env.clinic_id]:
            to_start.setdefault((env.patient, p.session_type),
                                NewPlan(env.clinic_id, env.patient, code, env.occurred_at, env))
    return list(to_start.values())


def adopt_into_new_plans(new: list[Envelope[Any]], started: dict[UUID, Plan],
                         plans: dict[UUID, Plan | None]) -> None:
    """The plans just started (by patient) take this batch's bookings that had none: dosing
    sessions of their treatment, other sessions of the last `ADOPT_DAYS` days."""
    for env in new:
        plan, p = started.get(env.patient), env.payload
        if plan is None or plans[p.booking_id] is not None:
            continue
        counted = parse_template(plan.definition).counts(p.session_type)
        if (p.is_dosing and counted) or (not p.is_dosing and \
                p.starts_at > plan.created_at - timedelta(days=ADOPT_DAYS)):
            plans[p.booking_id] = plan


# --- recomputing plans ------------------------------------------------------------------


async def refresh_many(conn: Connection, items: list[tuple[Plan, Envelope[Any] | None]],
                       now: datetime) -> list[Envelope[Any]]:
    """Recompute plans from their sessions (one query for all), save them and their timers
    (one statement each for all), and return the events for what changed."""
    sessions = await store.sessions_of_plans(conn, [plan.id for plan, _ in items])
    saves: list[tuple[Any, ...]] = []
    sets: list[tuple[UUID, str, str, datetime]] = []
    drops: list[store.TimerKey] = []
    out: list[Envelope[Any]] = []
    for plan, cause in items:
        t = parse_template(plan.definition)
        prog = evaluate(t, sessions.get(plan.id, []), plan.created_at, plan.phase, now)
        saves.append((plan.id, prog.phase, prog.booked, prog.completed, prog.cancelled,
                      prog.missed, prog.next_due_from, prog.next_due_by))
        timer_changes(plan.id, prog, sets, drops)
        out += changes(plan, prog, cause)
    await store.save_progress(conn, saves)
    await store.set_timers(conn, sets)
    await store.drop_timers(conn, drops)
    return out


def changes(plan: Plan, prog: Progress, cause: Envelope[Any] | None) -> list[Envelope[Any]]:
    """The events telling how the plan moved from where it stood to `prog`."""
    out: list[Envelope[Any]] = []
    booking_id = cause.payload.booking_id if cause is not None else None
    before = (plan.sessions_booked, plan.sessions_completed, plan.sessions_cancelled,
              plan.sessions_missed)
    if prog.counts() != before or (plan.next_due_from, plan.next_due_by) != \
            (prog.next_due_from, prog.next_due_by):
        out.append(store.event(plan, PlanProgressed(
            plan_id=plan.id, template=plan.template, phase=prog.phase,
            sessions_target=prog.target, sessions_booked=prog.booked,
            sessions_completed=prog.completed, sessions_cancelled=prog.cancelled,
            sessions_missed=prog.missed, booking_id=booking_id,
            next_session_at=prog.next_session_at, next_due_from=prog.next_due_from,
            next_due_by=prog.next_due_by), cause))
    if prog.phase != plan.phase:
        # a batch may carry a plan through several phases at once: announce each step
        steps = [plan.phase, prog.phase]
        if plan.phase == "assessment" and prog.phase in ("maintenance", "completed"):
            steps.insert(1, "induction")
        for before_phase, after_phase in pairwise(steps):
            out.append(store.event(plan, PlanPhaseChanged(
                plan_id=plan.id, previous_phase=before_phase, phase=after_phase), cause))
        if prog.phase == "completed":
            out.append(store.event(plan, PlanCompleted(plan_id=plan.id, template=plan.template,
                                                       sessions_completed=prog.completed), cause))
    return out


def timer_changes(plan_id: UUID, prog: Progress, sets: list[tuple[UUID, str, str, datetime]],
                  drops: list[store.TimerKey]) -> None:
    """The plan's timers as its progress wants them: `session_due` while no session is
    booked, `adherence_gap` after the last completed one (during induction and maintenance)."""
    active = prog.phase in ("induction", "maintenance")
    if active and prog.next_due_from is not None and prog.booked == 0:
        sets.append((plan_id, "session_due", "", prog.next_due_from))
    else:
        drops.append((plan_id, "session_due", ""))
    if active and prog.gap_due_at is not None:
        sets.append((plan_id, "adherence_gap", "", prog.gap_due_at))
    else:
        drops.append((plan_id, "adherence_gap", ""))


async def _after_dosing(conn: Connection, plan: Plan, env: Envelope[Any],
                        now: datetime) -> list[Envelope[Any]]:
    """Integration and REMS follow-ups of a completed dosing session."""
    t = parse_template(plan.definition)
    p = env.payload
    out = []
    if t.integration_within_days:
        sessions = await store.sessions_of_plan(conn, plan.id)
        dosing = next(s for s in sessions if s.booking_id == p.booking_id)
        if not integration_booked_after(sessions, dosing, t.integration_within_days):
            out.append(store.event(plan, IntegrationSessionMissing(
                plan_id=plan.id, booking_id=p.booking_id,
                within_days=t.integration_within_days), env))
    if t.rems:
        due = p.starts_at + timedelta(days=t.rems_form_within_days)
        if await store.insert_rems_form(conn, p.booking_id, plan.id, due):
            await store.set_timers(conn, [(plan.id, "rems_overdue", str(p.booking_id), due)])
            out.append(store.event(plan, RemsMonitoringFormDue(
                plan_id=plan.id, booking_id=p.booking_id, due_at=due), env))
    return out


# --- staff's changes --------------------------------------------------------------------


async def file_rems_form(conn: Connection, clinic_id: UUID, plan_id: UUID,
                         booking_id: UUID, filed_by: str) -> RemsForm:
    """Record that a session's REMS form was filed; its overdue timer goes."""
    if await store.get_plan(conn, clinic_id, plan_id) is None:
        raise NotFound("unknown plan")
    form = await store.file_rems_form(conn, plan_id, booking_id, filed_by)
    if form is None:
        raise NotFound("no REMS form is due for this session in this plan")
    await store.drop_timers(conn, [(plan_id, "rems_overdue", str(booking_id))])
    return form


async def discontinue(conn: Connection, clinic_id: UUID, plan_id: UUID) -> Plan:
    """End an open plan early; its timers go."""
    before = await store.get_plan(conn, clinic_id, plan_id)
    if before is None:
        raise NotFound("unknown plan")
    plan = await store.discontinue(conn, clinic_id, plan_id)
    if plan is None:
        raise Conflict(f"a {before.phase} plan cannot be discontinued")
    await store.drop_plan_timers(conn, plan_id)
    await store.emit(conn, [store.event(plan, PlanPhaseChanged(
        plan_id=plan_id, previous_phase=before.phase, phase="discontinued"))])
    return plan
