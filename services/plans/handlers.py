"""Plans: event handlers (booking events move plan progress). Plain functions on the
consumer's connection, inside its transaction; outgoing events go through the outbox."""

from __future__ import annotations

from pathlib import Path
from uuid import uuid4

import asyncpg

from services.plans.templates import DEFAULT_FOR_MODALITY, TEMPLATES
from shared.db import Queries
from shared.events import Envelope
from shared.events.booking import SessionBooked
from shared.events.plans import PlanProgressed, PlanStarted
from shared.outbox import enqueue

PRODUCER = "plans"
Q = Queries(Path(__file__).with_name("queries.sql"))


async def on_session_booked(conn: asyncpg.Connection, env: Envelope, *,
                            auto_create: bool = True) -> None:
    """Count a booked session against the patient's plan (starting one for a dosing
    session when the patient has none and the clinic wants that)."""
    booked: SessionBooked = env.payload  # type: ignore[assignment]
    out: list[Envelope] = []
    if booked.is_dosing:
        plan = await conn.fetchrow(Q.open_plan_for, env.patient_id, booked.session_type)
        template = TEMPLATES.get(DEFAULT_FOR_MODALITY.get(booked.session_type, ""))
        if plan is None and auto_create and template is not None:
            plan = await conn.fetchrow(Q.insert_plan, uuid4(), env.clinic_id, env.patient_id,
                                       template.code, template.modality, template.induction_sessions)
            out.append(Envelope.new(
                PlanStarted(plan_id=plan["id"], template=template.code,
                            sessions_target=plan["sessions_target"]),
                producer=PRODUCER, clinic_id=env.clinic_id, patient_id=env.patient_id, cause=env))
    else:
        plan = await conn.fetchrow(Q.any_open_plan_for, env.patient_id)
    if plan is None:
        return  # not part of any plan: nothing to count
    await conn.execute(Q.upsert_session, booked.booking_id, plan["id"], booked.session_type,
                       booked.is_dosing, booked.starts_at, booked.version)
    out.append(await _progress(conn, plan, env, booking_id=booked.booking_id))
    await enqueue(conn, out)


async def _progress(conn: asyncpg.Connection, plan: asyncpg.Record, cause: Envelope,
                    booking_id=None) -> Envelope:
    counts = await conn.fetchrow(Q.counts, plan["id"])
    await conn.execute(Q.touch_plan, plan["id"])
    return Envelope.new(
        PlanProgressed(plan_id=plan["id"], template=plan["template"], phase=plan["phase"],
                       sessions_target=plan["sessions_target"], sessions_booked=counts["booked"],
                       sessions_completed=counts["completed"], booking_id=booking_id,
                       next_session_at=counts["next_session_at"]),
        producer=PRODUCER, clinic_id=plan["clinic_id"], patient_id=plan["patient_id"], cause=cause)
