"""HTTP API of the plans service."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request

from services.plans.handlers import Q
from shared.errors import NotFound

router = APIRouter(tags=["plans"])


async def _plan_view(conn, plan) -> dict[str, Any]:
    counts = await conn.fetchrow(Q.counts, plan["id"])
    sessions = await conn.fetch(Q.plan_sessions, plan["id"])
    return {
        **dict(plan),
        "sessions_booked": counts["booked"], "sessions_completed": counts["completed"],
        "next_session_at": counts["next_session_at"],
        "progress": f"{counts['completed']} of {plan['sessions_target']} done",
        "sessions": [dict(s) for s in sessions],
    }


@router.get("/plans/{plan_id}")
async def get_plan(plan_id: UUID, request: Request) -> dict[str, Any]:
    async with request.app.state.runtime.db.acquire() as conn:
        plan = await conn.fetchrow(Q.get_plan, plan_id)
        if plan is None:
            raise NotFound("unknown plan")
        return await _plan_view(conn, plan)


@router.get("/patients/{patient_id}/plans")
async def patient_plans(patient_id: UUID, request: Request) -> list[dict[str, Any]]:
    async with request.app.state.runtime.db.acquire() as conn:
        return [await _plan_view(conn, p) for p in await conn.fetch(Q.plans_of_patient, patient_id)]
