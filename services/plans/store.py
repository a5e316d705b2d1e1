"""The plans service's store: the only module that holds SQL (its named queries, in
queries.sql) and the only one that sees asyncpg records. Each function runs one statement on
the connection (or pool) it is given, in the caller's transaction, and answers with the
frozen dataclasses of services/plans/model.py (a plan's sessions for the rules: progress's
`Session`) or scalars. Statements about many rows take one list per column.

Events leave through the outbox (`emit`), in the same transaction as the change they tell of.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeAlias, TypeVar
from uuid import UUID

import asyncpg

from services.plans.model import (
    ClinicSettings,
    Plan,
    PlanSession,
    RemsForm,
    TemplateVersion,
    Timer,
    TimerCount,
)
from services.plans.progress import Session
from services.plans.templates import parse as parse_template
from shared.db import Connection, Queries
from shared.events import Envelope, Event
from shared.outbox import enqueue
from shared.rows import every as _all
from shared.rows import made as _made
from shared.rows import one as _one
from shared.rows import row as _row

Q = Queries(Path(__file__).with_name("queries.sql"))
PRODUCER = "plans"

Db: TypeAlias = Connection | asyncpg.Pool
T = TypeVar("T")

TimerKey = tuple[UUID, str, str]
"""A timer: its plan, kind and ref."""



def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as columns, for statements that take one array per column."""
    return [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def _by_plan(cls: type[T], records: Iterable[asyncpg.Record]) -> dict[UUID, list[T]]:
    found: dict[UUID, list[T]] = {}
    for r in records:
        found.setdefault(r["plan_id"], []).append(_row(cls, r))
    return found


# --- events -------------------------------------------------------------------------------


def event(plan: Plan, payload: Event, cause: Envelope[Any] | None = None) -> Envelope[Event]:
    """An event of the plans service about a plan."""
    return Envelope.new(payload, producer=PRODUCER, clinic_id=plan.clinic_id,
                        patient_id=plan.patient_id, cause=cause)


async def emit(conn: Connection, envelopes: Iterable[Envelope[Any]]) -> None:
    """Hand events to the outbox, in the caller's transaction."""
    await enqueue(conn, envelopes)


# --- plans --------------------------------------------------------------------------------


async def insert_plans(conn: Db, rows: Sequence[tuple[Any, ...]]) -> dict[UUID, Plan]:
    """New plans, from rows of (id, clinic, patient, template, version, definition, modality,
    target, created at); those inserted by id (a second open plan for a treatment is not)."""
    return {p.id: p for p in await _all(conn, Plan, Q.insert_plans, *_columns(rows, 9))}


async def get_plan(db: Db, clinic_id: UUID, plan_id: UUID) -> Plan | None:
    return await _one(db, Plan, Q.get_plan, plan_id, clinic_id)


async def lock_plan(conn: Db, plan_id: UUID) -> Plan:
    plan = await _one(conn, Plan, Q.lock_plan, plan_id)
    assert plan is not None  # a timer's plan (plans are never deleted)
    return plan


async def plans_of_patient(db: Db, clinic_id: UUID, patient_id: UUID) -> list[Plan]:
    return await _all(db, Plan, Q.plans_of_patient, clinic_id, patient_id)


async def plans_of_bookings(conn: Db, booking_ids: list[UUID]) -> dict[UUID, Plan]:
    """The plan each booking counts in (those in one), locked."""
    plans: dict[UUID, Plan] = {}  # a plan's several bookings share one Plan
    found: dict[UUID, Plan] = {}
    for r in await conn.fetch(Q.plans_of_bookings, booking_ids):
        plan = plans.get(r["id"])
        if plan is None:
            plan = plans[r["id"]] = _row(Plan, r)
        found[r["booking_id"]] = plan
    return found


async def open_plans_of(conn: Db, patient_ids: list[UUID]) -> dict[UUID, list[Plan]]:
    """The patients' open plans, oldest first, locked."""
    found: dict[UUID, list[Plan]] = {}
    for plan in await _all(conn, Plan, Q.open_plans_of, patient_ids):
        found.setdefault(plan.patient_id, []).append(plan)
    return found


async def save_progress(conn: Db, rows: Sequence[tuple[Any, ...]]) -> None:
    """Plans' recomputed state, from rows of (id, phase, booked, completed, cancelled, missed,
    next due from, next due by)."""
    await conn.execute(Q.save_progress_many, *_columns(rows, 8))


async def discontinue(conn: Db, clinic_id: UUID, plan_id: UUID) -> Plan | None:
    """The plan, discontinued; None if it is unknown, completed or discontinued already."""
    return await _one(conn, Plan, Q.discontinue, plan_id, clinic_id)


# --- sessions -----------------------------------------------------------------------------


async def upsert_sessions(conn: Db, rows: Sequence[tuple[Any, ...]]) -> set[UUID]:
    """Sessions as booking events say, from rows of (booking, plan or None, session type,
    dosing, start, status, version, clinic, patient), each only if newer than what is known;
    the bookings of those applied."""
    return {r["booking_id"] for r in await conn.fetch(Q.upsert_sessions, *_columns(rows, 9))}


async def adopt_sessions(conn: Db, plan: Plan, started_at: datetime) -> None:
    """The new plan takes the patient's recent sessions that had no plan."""
    await conn.execute(Q.adopt_sessions, plan.id, plan.patient_id, plan.clinic_id, started_at,
                       parse_template(plan.definition).dosing_types)


def _session(r: asyncpg.Record) -> Session:
    return Session(r["booking_id"], r["session_type"], r["is_dosing"], r["starts_at"], r["status"])


async def sessions_of_plan(db: Db, plan_id: UUID) -> list[Session]:
    """A plan's sessions as the rules see them, by start."""
    return [_session(r) for r in await db.fetch(Q.sessions_of_plan, plan_id)]


async def sessions_of_plans(db: Db, plan_ids: list[UUID]) -> dict[UUID, list[Session]]:
    """Plans' sessions as the rules see them, by start (one query)."""
    found: dict[UUID, list[Session]] = {}
    for r in await db.fetch(Q.sessions_of_plans, plan_ids):
        found.setdefault(r["plan_id"], []).append(_session(r))
    return found


async def timelines(db: Db, plan_ids: list[UUID]) -> dict[UUID, list[PlanSession]]:
    """Plans' sessions as their views show them, by start (one query)."""
    return _by_plan(PlanSession, await db.fetch(Q.sessions_of_plans, plan_ids))


async def patients_with_unplanned_sessions(conn: Db, patient_ids: list[UUID]) -> set[UUID]:
    return {r["patient_id"]
            for r in await conn.fetch(Q.patients_with_unplanned_sessions, patient_ids)}


# --- durable timers -----------------------------------------------------------------------


async def set_timers(conn: Db, timers: Sequence[tuple[UUID, str, str, datetime]]) -> None:
    """Timers (plan, kind, ref, due at), each key at most once; a timer whose due time is
    unchanged keeps its fired mark."""
    if timers:
        await conn.execute(Q.set_timers, *_columns(timers, 4))


async def drop_timers(conn: Db, keys: Sequence[TimerKey]) -> None:
    """Timers (plan, kind, ref) not fired yet."""
    if keys:
        await conn.execute(Q.drop_timers, *_columns(keys, 3))


async def drop_plan_timers(conn: Db, plan_id: UUID) -> None:
    """Every timer of the plan not fired yet."""
    await conn.execute(Q.drop_plan_timers, plan_id)


async def claim_due_timers(conn: Db, batch: int) -> list[Timer]:
    """Due timers, locked with their plans (those locked elsewhere skipped)."""
    return await _all(conn, Timer, Q.claim_due_timers, batch)


async def mark_fired(conn: Db, timer: Timer) -> None:
    await conn.execute(Q.mark_fired, timer.id)


async def next_timer_at(db: Db) -> datetime | None:
    value: datetime | None = await db.fetchval(Q.next_timer_at)
    return value


async def timer_counts(db: Db, overdue_after: float) -> list[TimerCount]:
    """Timers not fired yet by kind; overdue: `overdue_after` seconds past their time."""
    return await _all(db, TimerCount, Q.timer_queue, overdue_after)


# --- REMS monitoring forms ----------------------------------------------------------------


async def insert_rems_form(conn: Db, booking_id: UUID, plan_id: UUID, due_at: datetime) -> bool:
    """Whether the form is new (one per session)."""
    return bool(await conn.fetchval(Q.insert_rems_form, booking_id, plan_id, due_at))


async def rems_form(conn: Db, booking_id: UUID) -> RemsForm | None:
    return await _one(conn, RemsForm, Q.rems_form, booking_id)


async def rems_forms_of_plans(db: Db, plan_ids: list[UUID]) -> dict[UUID, list[RemsForm]]:
    """Plans' forms, by due time (one query)."""
    return _by_plan(RemsForm, await db.fetch(Q.rems_forms_of_plans, plan_ids))


async def file_rems_form(conn: Db, plan_id: UUID, booking_id: UUID,
                         filed_by: str) -> RemsForm | None:
    """The form, filed; None if none is due for the session in the plan."""
    return await _one(conn, RemsForm, Q.file_rems_form, booking_id, plan_id, filed_by)


# --- patients, clinics' settings, templates -----------------------------------------------


async def upsert_patient(conn: Db, clinic_id: UUID, patient_id: UUID) -> None:
    await conn.execute(Q.upsert_patient, patient_id, clinic_id)


async def patient_known(db: Db, clinic_id: UUID, patient_id: UUID) -> bool:
    """Whether booking told of the patient, in this network."""
    return bool(await db.fetchval(Q.patient_known, patient_id, clinic_id))


async def auto_create_of(conn: Db, clinic_ids: list[UUID], default: bool) -> dict[UUID, bool]:
    """Whether each clinic starts plans on its own (`default` for those with no setting)."""
    return {r["clinic_id"]: r["auto_create"]
            for r in await conn.fetch(Q.auto_create_of, clinic_ids, default)}


async def set_auto_create(db: Db, clinic_id: UUID, auto_create: bool) -> ClinicSettings:
    return await _made(db, ClinicSettings, Q.set_auto_create, clinic_id, auto_create)


async def templates_for(db: Db, clinic_id: UUID) -> list[TemplateVersion]:
    """The newest version of every template the clinic uses (its own over built-in ones)."""
    return await _all(db, TemplateVersion, Q.templates_for, clinic_id)


async def latest_templates(conn: Db, wanted: list[tuple[str, UUID]]
                           ) -> dict[tuple[str, UUID], tuple[int, str]]:
    """The newest version and definition of each (template, clinic) pair: the clinic's own
    version, else the built-in one. An unknown template is left out."""
    return {(r["code"], r["clinic_id"]): (r["version"], r["definition"])
            for r in await conn.fetch(Q.latest_templates, [c for c, _ in wanted],
                                      [k for _, k in wanted])}


async def add_template_version(db: Db, code: str, clinic_id: UUID,
                               definition: str) -> TemplateVersion:
    return await _made(db, TemplateVersion, Q.add_template_version, code, clinic_id, definition)
