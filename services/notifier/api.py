"""HTTP API of the notifier (staff reads, with the clinic network's API keys)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request

from services.notifier.handlers import Q
from services.notifier import policy
from services.notifier.policy import PolicyIn
from shared.auth import ADMIN, READ, Principal, require

router = APIRouter(tags=["texts"])


@router.get("/patients/{patient_id}/texts")
async def patient_texts(patient_id: UUID, request: Request,
                        who: Principal = require(*READ)) -> list[dict[str, Any]]:
    """Every text scheduled for a patient, with its state and, once sent, its body."""
    async with request.app.state.runtime.db.acquire() as conn:
        return [dict(r) for r in await conn.fetch(Q.texts_of_patient, patient_id, who.clinic_id)]


@router.get("/policy", tags=["policy"])
async def get_policy(request: Request, who: Principal = require(*READ)) -> dict[str, Any]:
    """This clinic network's texting policy (quiet hours, caps, kinds of text turned off)."""
    async with request.app.state.runtime.db.acquire() as conn:
        return await policy.show(conn, who.clinic_id)


@router.post("/policy", tags=["policy"])
async def set_policy(cmd: PolicyIn, request: Request, who: Principal = require(*ADMIN)) -> dict[str, Any]:
    """Replace the texting policy. Quiet hours apply by site, else by the site's state or
    province (`regions`, e.g. {"US-FL": {"quiet_hours_start": 20, "quiet_hours_end": 8}}),
    else network-wide; texts already planned are moved when they would go out in them."""
    async with request.app.state.runtime.db.acquire() as conn:
        return await policy.save(conn, who.clinic_id, cmd)


@router.get("/attention")
async def needs_staff(request: Request, who: Principal = require(*READ),
                      limit: int = 100) -> dict[str, Any]:
    """What staff should look at: numbers Twilio refused for good, and patients' texts
    that were not a reply we act on (questions, HELP, replies with no upcoming appointment)."""
    async with request.app.state.runtime.db.acquire() as conn:
        numbers = await conn.fetch(Q.failing_numbers, who.clinic_id, limit)
        replies = await conn.fetch(Q.replies_for_staff, who.clinic_id, limit)
    return {"failing_numbers": [dict(r) for r in numbers], "replies": [dict(r) for r in replies]}
