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


def _event(plan: asyncpg.Record, payload: Event, cause: Envelope | None = None) -> Envelope:
    return Envelope.new(payload, producer=PRODUCER, clinic_id=plan["clinic_id"],
                        patient_id=plan["patient_id"], cause=cause)


async def on_patient_registered(conn: asyncpg.Connection, env: Envelope) -> None:
    await conn.execute(Q.upsert_patient, env.patient_id, env.clinic_id)


async def start_plan(conn: asyncpg.Connection, clinic_id: UUID, patient_id: UUID, code: str,
                     started_at: datetime, cause: Envelope | None = None) -> asyncpg.Record:
    """Start a plan from the newest version of a template (409 if one is already open)."""
    version, t = await latest(conn, code, clinic_id)
    plan = await conn.fetchrow(Q.insert_plan, uuid4(), clinic_id, patient_id, code, version,
                               t.model_dump_json(), t.modality, t.target, started_at)
    if plan is None:
        raise Conflict(f"the patient already has an open plan for {t.modality}")
    await conn.execute(Q.adopt_sessions, plan["id"], patient_id, clinic_id, started_at, t.modality)
    await enqueue(conn, [_event(plan, PlanStarted(plan_id=plan["id"], template=code,
                                                  template_version=version,
                                                  sessions_target=t.target), cause)])
    return plan


async def _plan_for(conn: asyncpg.Connection, env: Envelope, auto_create: bool) -> asyncpg.Record | None:
    p = env.payload
    plan = await conn.fetchrow(Q.plan_of_booking, p.booking_id)
    if plan is not None:
        return plan
    if p.is_dosing:
        plan = await conn.fetchrow(Q.open_plan_for, env.clinic_id, env.patient_id, p.session_type)
        code = DEFAULT_FOR_MODALITY.get(p.session_type)
        if plan is None and code and STATUS_OF[type(p)] != "cancelled" and \
                await conn.fetchval(Q.auto_create, env.clinic_id, auto_create):
            plan = await start_plan(conn, env.clinic_id, env.patient_id, code, env.occurred_at, env)
        return plan
    return await conn.fetchrow(Q.any_open_plan_for, env.clinic_id, env.patient_id)


async def on_booking_event(conn: asyncpg.Connection, env: Envelope, *, auto_create: bool = True,
                           now: datetime | None = None) -> None:
    """Apply one booking event to the patient's plan (idempotent, order-tolerant)."""
    p = env.payload
    status = STATUS_OF[type(p)]
    plan = await _plan_for(conn, env, auto_create)
    applied = await conn.fetchval(Q.upsert_session, p.booking_id, plan["id"] if plan else None,
                                  p.session_type, p.is_dosing, p.starts_at, status, p.version,
                                  env.clinic_id, env.patient_id)
    if applied is None or plan is None:
        return  # a duplicate or older than what we know; or no plan (yet) to count it in
    now = now or datetime.now(UTC)
    out = await refresh(conn, plan, now, cause=env, booking_id=p.booking_id)
    if status == "completed" and p.is_dosing:
        out += await _after_dosing(conn, plan, env, now)
    await enqueue(conn, out)


async def refresh(conn: asyncpg.Connection, plan: asyncpg.Record, now: datetime,
                  cause: Envelope | None = None, booking_id: UUID | None = None) -> list[Envelope]:
    """Recompute a plan from its sessions; save it, set its timers, return its events."""
    t = Template.model_validate_json(plan["definition"])
    sessions = await _sessions(conn, plan["id"])
    prog = evaluate(t, sessions, plan["created_at"], plan["phase"], now)
    await conn.execute(Q.save_progress, plan["id"], prog.phase, prog.booked, prog.completed,
                       prog.cancelled, prog.missed, prog.next_due_from, prog.next_due_by)
    await _set_timers(conn, plan["id"], prog)
    out: list[Envelope] = []
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
        out.append(_event(plan, PlanPhaseChanged(plan_id=plan["id"], previous_phase=plan["phase"],
                                                 phase=prog.phase), cause))
        if prog.phase == "completed":
            out.append(_event(plan, PlanCompleted(plan_id=plan["id"], template=plan["template"],
                                                  sessions_completed=prog.completed), cause))
    return out


async def _sessions(conn: asyncpg.Connection, plan_id: UUID) -> list[Session]:
    return [Session(r["booking_id"], r["session_type"], r["is_dosing"], r["starts_at"], r["status"])
            for r in await conn.fetch(Q.sessions_of_plan, plan_id)]


async def _set_timers(conn: asyncpg.Connection, plan_id: UUID, prog: Progress) -> None:
    active = prog.phase in ("induction", "maintenance")
    if active and prog.next_due_from is not None and prog.booked == 0:
        await conn.execute(Q.set_timer, plan_id, "session_due", "", prog.next_due_from)
    else:
        await conn.execute(Q.drop_timer, plan_id, "session_due", "")
    if active and prog.gap_due_at is not None:
        await conn.execute(Q.set_timer, plan_id, "adherence_gap", "", prog.gap_due_at)
    else:
        await conn.execute(Q.drop_timer, plan_id, "adherence_gap", "")


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

