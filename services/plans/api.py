"""HTTP API of the plans service. Same keys and tenant rules as booking: a key sees only its
own clinic network's plans (other ids answer 404)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import ConfigDict, Field

from services.plans import handlers, store
from services.plans.fhir import care_plan
from services.plans.model import Plan, as_dict
from services.plans.templates import Template
from shared.audit import record
from shared.auth import ADMIN, CARE, READ, SCHEDULE, Principal, require
from shared.db import Connection
from shared.errors import NotFound
from shared.fhir import FhirJSONResponse
from shared.runtime import db_of as _db
from shared.validation import RequestModel

router = APIRouter(tags=["plans"])


class StartPlan(RequestModel):
    model_config = ConfigDict(extra="forbid")
    patient_id: UUID
    template: str = Field(
        description="e.g. iv_induction, esketamine_trd, esketamine_si, im_series, kap"
    )


class ClinicSettings(RequestModel):
    model_config = ConfigDict(extra="forbid")
    auto_create_plans: bool


async def plan_views(conn: Connection, plans: list[Plan]) -> list[dict[str, Any]]:
    """Plans with their progress, timeline and REMS forms (three queries however many)."""
    ids = [plan.id for plan in plans]
    timelines = await store.timelines(conn, ids)
    forms = await store.rems_forms_of_plans(conn, ids)
    views = []
    for plan in plans:
        sessions = timelines.get(plan.id, [])
        view = {k: getattr(plan, k) for k in (
            "id", "clinic_id", "patient_id", "template", "template_version", "modality", "phase",
            "sessions_target", "sessions_booked", "sessions_completed", "sessions_cancelled",
            "sessions_missed", "next_due_from", "next_due_by", "created_at", "updated_at")}
        upcoming = [s.starts_at for s in sessions
                    if s.is_dosing and s.status in ("booked", "arrived")]
        views.append({
            **view, "progress": f"{plan.sessions_completed} of {plan.sessions_target} done",
            "next_session_at": min(upcoming) if upcoming else None,
            "timeline": [as_dict(s) for s in sessions],
            "rems_forms": [as_dict(f) for f in forms.get(plan.id, [])]})
    return views


async def plan_view(conn: Connection, plan: Plan) -> dict[str, Any]:
    """A plan with its progress, timeline and REMS forms."""
    [view] = await plan_views(conn, [plan])
    return view


@router.post("/plans", status_code=201)
async def start_plan(
    cmd: StartPlan, request: Request, who: Principal = require(*SCHEDULE)
) -> JSONResponse:
    """Start a plan from a template for a patient (409 if one is open for that treatment)."""
    async with _db(request).acquire() as conn, conn.transaction():
        if not await store.patient_known(conn, who.clinic_id, cmd.patient_id):
            raise NotFound("unknown patient", field="patient_id")
        plan = await handlers.start_plan(conn, who.clinic_id, cmd.patient_id, cmd.template,
                                         datetime.now(UTC))
        await record(conn, request, patients=[cmd.patient_id], status=201)
        return JSONResponse(jsonable_encoder(await plan_view(conn, plan)), status_code=201)


@router.get("/plans/{plan_id}")
async def get_plan(
    plan_id: UUID, request: Request, who: Principal = require(*READ)
) -> dict[str, Any]:
    """A plan with its progress and timeline."""
    async with _db(request).acquire() as conn:
        plan = await store.get_plan(conn, who.clinic_id, plan_id)
        if plan is None:
            raise NotFound("unknown plan")
        return await plan_view(conn, plan)


@router.get("/patients/{patient_id}/plans")
async def patient_plans(
    patient_id: UUID, request: Request, who: Principal = require(*READ)
) -> list[dict[str, Any]]:
    """A patient's plans (404 for a patient of another network, or not known here yet)."""
    async with _db(request).acquire() as conn:
        if not await store.patient_known(conn, who.clinic_id, patient_id):
            raise NotFound("unknown patient", field="patient_id")
        return await plan_views(conn, await store.plans_of_patient(conn, who.clinic_id, patient_id))


@router.post("/plans/{plan_id}/rems-forms/{booking_id}/filed")
async def file_rems_form(plan_id: UUID, booking_id: UUID, request: Request,
                         who: Principal = require(*CARE)) -> dict[str, Any]:
    """Record that the REMS Patient Monitoring Form of a session was filed."""
    async with _db(request).acquire() as conn, conn.transaction():
        filed = as_dict(await handlers.file_rems_form(conn, who.clinic_id, plan_id, booking_id,
                                                      who.actor))
        plan = await store.get_plan(conn, who.clinic_id, plan_id)
        await record(conn, request, patients=[plan.patient_id] if plan else [])
        return filed


@router.post("/plans/{plan_id}/discontinue")
async def discontinue(
    plan_id: UUID, request: Request, who: Principal = require(*SCHEDULE)
) -> dict[str, Any]:
    async with _db(request).acquire() as conn, conn.transaction():
        plan = await handlers.discontinue(conn, who.clinic_id, plan_id)
        await record(conn, request, patients=[plan.patient_id])
        return await plan_view(conn, plan)


@router.get("/plan-templates")
async def list_templates(request: Request, who: Principal = require(*READ)) -> list[dict[str, Any]]:
    """The templates this clinic network uses (its own versions over the built-in ones)."""
    return [{"code": t.code, "version": t.version, "own": t.clinic_id is not None,
             "definition": Template.model_validate_json(t.definition).model_dump()}
            for t in await store.templates_for(_db(request), who.clinic_id)]


@router.post("/plan-templates/{code}", status_code=201)
async def override_template(code: str, definition: Template, request: Request,
                            who: Principal = require(*ADMIN)) -> dict[str, Any]:
    """A new version of a template for this clinic network; new plans use it."""
    async with _db(request).acquire() as conn, conn.transaction():
        added = await store.add_template_version(conn, code, who.clinic_id,
                                                 definition.model_dump_json())
        await record(conn, request, status=201)
    return {"code": added.code, "version": added.version, "definition": definition.model_dump()}


@router.post("/settings")
async def clinic_settings(
    cmd: ClinicSettings, request: Request, who: Principal = require(*ADMIN)
) -> dict[str, Any]:
    async with _db(request).acquire() as conn, conn.transaction():
        changed = as_dict(await store.set_auto_create(conn, who.clinic_id, cmd.auto_create_plans))
        await record(conn, request)
        return changed


@router.get("/fhir/CarePlan/{plan_id}", tags=["fhir"], response_class=FhirJSONResponse)
async def fhir_care_plan(
    plan_id: UUID, request: Request, who: Principal = require(*READ)
) -> FhirJSONResponse:
    async with _db(request).acquire() as conn:
        plan = await store.get_plan(conn, who.clinic_id, plan_id)
        if plan is None:
            raise NotFound("unknown plan")
        sessions = await store.timelines(conn, [plan_id])
    return FhirJSONResponse(care_plan(plan, sessions.get(plan_id, [])))
