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

from services.plans import handlers
from services.plans.fhir import care_plan
from services.plans.handlers import Q
from services.plans.templates import Template
from shared.auth import ADMIN, CARE, READ, SCHEDULE, Principal, require
from shared.errors import NotFound
from shared.fhir import FhirJSONResponse
from shared.validation import RequestModel

router = APIRouter(tags=["plans"])


class StartPlan(RequestModel):
    model_config = ConfigDict(extra="forbid")
    patient_id: UUID
    template: str = Field(description="e.g. iv_induction, esketamine_trd, esketamine_si, im_series, kap")


class ClinicSettings(RequestModel):
    model_config = ConfigDict(extra="forbid")
    auto_create_plans: bool


def _db(request: Request):
    return request.app.state.runtime.db


async def plan_view(conn, plan) -> dict[str, Any]:
    sessions = await conn.fetch(Q.sessions_of_plan, plan["id"])
    forms = await conn.fetch(Q.rems_forms_of_plan, plan["id"])
    view = {k: plan[k] for k in (
        "id", "clinic_id", "patient_id", "template", "template_version", "modality", "phase",
        "sessions_target", "sessions_booked", "sessions_completed", "sessions_cancelled",
        "sessions_missed", "next_due_from", "next_due_by", "created_at", "updated_at")}
    upcoming = [s["starts_at"] for s in sessions
                if s["is_dosing"] and s["status"] in ("booked", "arrived")]
    return {**view, "progress": f"{plan['sessions_completed']} of {plan['sessions_target']} done",
            "next_session_at": min(upcoming) if upcoming else None,
            "timeline": [dict(s) for s in sessions], "rems_forms": [dict(f) for f in forms]}


@router.post("/plans", status_code=201)
async def start_plan(cmd: StartPlan, request: Request, who: Principal = require(*SCHEDULE)):
    """Start a plan from a template for a patient (409 if one is open for that treatment)."""
    async with _db(request).acquire() as conn, conn.transaction():
        if not await conn.fetchval(Q.patient_known, cmd.patient_id, who.clinic_id):
            raise NotFound("unknown patient", field="patient_id")
        plan = await handlers.start_plan(conn, who.clinic_id, cmd.patient_id, cmd.template,
                                         datetime.now(UTC))
        return JSONResponse(jsonable_encoder(await plan_view(conn, plan)), status_code=201)


@router.get("/plans/{plan_id}")
async def get_plan(plan_id: UUID, request: Request, who: Principal = require(*READ)) -> dict:
    """A plan with its progress and timeline."""
    async with _db(request).acquire() as conn:
        plan = await conn.fetchrow(Q.get_plan, plan_id, who.clinic_id)
        if plan is None:
            raise NotFound("unknown plan")
        return await plan_view(conn, plan)


@router.get("/patients/{patient_id}/plans")
async def patient_plans(patient_id: UUID, request: Request, who: Principal = require(*READ)) -> list[dict]:
    """A patient's plans (404 for a patient of another network, or not known here yet)."""
    async with _db(request).acquire() as conn:
        if not await conn.fetchval(Q.patient_known, patient_id, who.clinic_id):
            raise NotFound("unknown patient", field="patient_id")
        return [await plan_view(conn, p)
                for p in await conn.fetch(Q.plans_of_patient, who.clinic_id, patient_id)]


@router.post("/plans/{plan_id}/rems-forms/{booking_id}/filed")
async def file_rems_form(plan_id: UUID, booking_id: UUID, request: Request,
                         who: Principal = require(*CARE)) -> dict:
    """Record that the REMS Patient Monitoring Form of a session was filed."""
    async with _db(request).acquire() as conn, conn.transaction():
        return await handlers.file_rems_form(conn, who.clinic_id, plan_id, booking_id, who.actor)


@router.post("/plans/{plan_id}/discontinue")
async def discontinue(plan_id: UUID, request: Request, who: Principal = require(*SCHEDULE)) -> dict:
    async with _db(request).acquire() as conn, conn.transaction():
        return await plan_view(conn, await handlers.discontinue(conn, who.clinic_id, plan_id))


@router.get("/plan-templates")
async def list_templates(request: Request, who: Principal = require(*READ)) -> list[dict]:
    """The templates this clinic network uses (its own versions over the built-in ones)."""
    rows = await _db(request).fetch(Q.templates_for, who.clinic_id)
    return [{"code": r["code"], "version": r["version"], "own": r["clinic_id"] is not None,
             "definition": Template.model_validate_json(r["definition"]).model_dump()} for r in rows]


@router.post("/plan-templates/{code}", status_code=201)
async def override_template(code: str, definition: Template, request: Request,
                            who: Principal = require(*ADMIN)) -> dict:
    """A new version of a template for this clinic network; new plans use it."""
    row = await _db(request).fetchrow(Q.add_template_version, code, who.clinic_id,
                                      definition.model_dump_json())
    return {"code": row["code"], "version": row["version"], "definition": definition.model_dump()}


@router.post("/settings")
async def clinic_settings(cmd: ClinicSettings, request: Request, who: Principal = require(*ADMIN)) -> dict:
    return dict(await _db(request).fetchrow(Q.set_auto_create, who.clinic_id, cmd.auto_create_plans))


@router.get("/fhir/CarePlan/{plan_id}", tags=["fhir"], response_class=FhirJSONResponse)
async def fhir_care_plan(plan_id: UUID, request: Request, who: Principal = require(*READ)):
    async with _db(request).acquire() as conn:
        plan = await conn.fetchrow(Q.get_plan, plan_id, who.clinic_id)
        if plan is None:
            raise NotFound("unknown plan")
        sessions = await conn.fetch(Q.sessions_of_plan, plan_id)
    return FhirJSONResponse(care_plan(plan, sessions))
