"""Who saw and changed a patient's record, and what a staff member did: the audit trails of
booking, plans and the notifier merged in time order (admins and privacy officers). The
patient page shows its latest entries ("who viewed this record")."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from services.console.services import Api
from services.console.sessions import Staff
from services.console.web import api, render, viewer
from shared.audit_api import merge_trails
from shared.auth import AUDIT

router = APIRouter()
SERVICES = ("booking", "plans", "notifier")
PAGE = 100


async def merged_trail(client: Api, *, patient_id: UUID | None = None,
                       staff_id: UUID | None = None, limit: int = PAGE) -> list[dict[str, Any]]:
    """The three services' latest entries about a patient or by a person, newest first."""
    pages = await asyncio.gather(*(
        client.get(service, "/audit", patient_id=patient_id, actor=staff_id, limit=limit)
        for service in SERVICES))
    return merge_trails([page["items"] for page in pages], limit)


async def staff_names(client: Api) -> dict[str, str]:
    """The network's people by id (entries name people by id only)."""
    return {p["id"]: p["name"] for p in await client.get("booking", "/staff")}


@router.get("/audit")
async def audit_page(request: Request, patient_id: UUID | None = None,
                     staff_id: UUID | None = None,
                     staff: Staff = viewer(*AUDIT)) -> HTMLResponse:
    client = api(request)
    entries, names = await asyncio.gather(
        merged_trail(client, patient_id=patient_id, staff_id=staff_id), staff_names(client))
    return render(request, "audit.html", nav="audit", entries=entries, names=names,
                  patient_id=patient_id, staff_id=staff_id)
