"""Patients: finding one (by name or number, posted so that neither is in a URL), and a
patient's page: contact and consent, ride contact, bookings past and future, plan progress
(phase, sessions done, next due window, REMS forms due), and every text with its delivery
state and the patient's replies. Three calls, one to each service, made together; for admins
and privacy officers four more, also together: the latest entries of the three audit trails
about the patient ("who viewed this record") and the staff names."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from services.console.audit import merged_trail, staff_names
from services.console.services import ServiceError
from services.console.sessions import Staff
from services.console.web import api, checked_form, render, signed_in
from shared.auth import AUDIT

router = APIRouter()
VIEWED = 10
"""Latest audit entries on the patient page (admins and privacy officers; all at /audit)."""


@router.get("/patients")
async def patients_page(request: Request, staff: Staff = Depends(signed_in)) -> HTMLResponse:
    return render(request, "patients.html", nav="patients", found=None)


@router.post("/patients")
async def find_patients(request: Request, staff: Staff = Depends(checked_form)) -> HTMLResponse:
    q = str((await request.form()).get("q", "")).strip()
    found = (
        await api(request).post("booking", "/patients/search", {"q": q[:100]})
        if len(q) >= 2
        else []
    )
    return render(request, "patients.html", nav="patients", found=found, q=q)


async def none_yet(call: Awaitable[Any], empty: Any) -> Any:
    """`call`'s answer, or `empty` when the service does not know the patient (yet: plans
    and the notifier hear of a new patient by event, a moment after booking)."""
    try:
        return await call
    except ServiceError as exc:
        if exc.status != 404:
            raise
        return empty


@router.get("/patients/{patient_id}")
async def patient_page(
    request: Request, patient_id: UUID, staff: Staff = Depends(signed_in)
) -> HTMLResponse:
    client = api(request)
    audit_calls = [merged_trail(client, patient_id=patient_id, limit=VIEWED),
                   staff_names(client)] if staff.can(*AUDIT) else []
    overview, plans, messages, *seen = await asyncio.gather(
        client.get("booking", f"/patients/{patient_id}/overview"),
        none_yet(client.get("plans", f"/patients/{patient_id}/plans"), []),
        none_yet(client.get("notifier", f"/patients/{patient_id}/messages"),
                 {"texts": [], "replies": [], "contact": None}), *audit_calls)
    viewed, names = seen or ([], {})
    now = datetime.now(UTC)
    bookings = overview["bookings"]
    upcoming = [b for b in bookings if datetime.fromisoformat(b["starts_at"]) >= now]
    past = [b for b in bookings if datetime.fromisoformat(b["starts_at"]) < now]
    timezone = bookings[0]["timezone"] if bookings else "UTC"
    for plan in plans:
        plan["forms_due"] = [f for f in plan.get("rems_forms", []) if not f.get("filed_at")]
    return render(request, "patient.html", nav="patients", patient=overview["patient"],
                  upcoming=list(reversed(upcoming)), past=past, plans=plans,
                  texts=messages["texts"], replies=messages["replies"],
                  contact=messages["contact"], tz=timezone, viewed=viewed, names=names)
