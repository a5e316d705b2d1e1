"""Aggregate reads for staff screens (the console): a day sheet, a patient's overview, the
attention list, patient search and names, the network's set-up. Each is one statement
(queries.sql, "Staff screens"), most of them JSON that PostgreSQL builds, so that a screen
costs one call here however many rows it shows. Same keys, tokens and tenant rules as the
rest of the API."""

from __future__ import annotations

import re
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from services.booking import store
from services.booking.model import as_dict
from shared.auth import ADMIN, READ, Principal, require
from shared.days import day_range
from shared.errors import NotFound
from shared.runtime import db_of as _db
from shared.validation import SaneDate

router = APIRouter(tags=["staff screens"])
MAX_SHEET_DAYS = 42


def _json(text: str) -> Response:
    return Response(text, media_type="application/json", headers={"Cache-Control": "no-store"})


@router.get("/sites/{site_id}/sheet")
async def site_sheet(site_id: UUID, request: Request,
                     first: Annotated[SaneDate, Query(alias="from")],
                     who: Principal = require(*READ),
                     last: Annotated[SaneDate | None, Query(alias="to")] = None) -> Response:
    """A site's bookings between two local dates (inclusive; at most 42 days), with patient,
    room and provider names, the site's rooms and the network's sites: a day sheet or a week
    in one call."""
    first, last = day_range(first, last, MAX_SHEET_DAYS)
    text = await store.sheet(_db(request), who.clinic_id, site_id, first, last)
    if text is None:
        raise NotFound("unknown site", field="site_id")
    return _json(text)


class PatientSearch(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    q: str = Field(
        min_length=2, max_length=100, description="Words of the name, or digits of the number"
    )
    limit: int = Field(20, ge=1, le=100)


def _like(word: str) -> str:
    return re.sub(r"([\\%_])", r"\\\1", word)


@router.post("/patients/search", tags=["patients"])
async def search_patients(cmd: PatientSearch, request: Request,
                          who: Principal = require(*READ)) -> list[dict[str, Any]]:
    """Patients by name (every word must match) or by the last digits of their number (4 or
    more). A POST, so that names and numbers stay out of URLs and access logs."""
    digits = re.sub(r"\D", "", cmd.q)
    words = [] if len(digits) >= 4 and not re.search(r"[^\d\s()+.-]", cmd.q) else \
        [_like(w) for w in cmd.q.split()][:5]
    found = await store.search_patients(_db(request), who.clinic_id, words,
                                        digits if len(digits) >= 4 else "", cmd.limit)
    return [as_dict(p) for p in found]


@router.get("/patients/{patient_id}/overview", tags=["patients"])
async def patient_overview(patient_id: UUID, request: Request,
                           who: Principal = require(*READ)) -> Response:
    """A patient with every booking (newest first) and where it is."""
    text = await store.patient_overview(_db(request), who.clinic_id, patient_id)
    if text is None:
        raise NotFound("unknown patient", field="patient_id")
    return _json(text)


@router.get("/patient-names", tags=["patients"])
async def patient_names(request: Request, who: Principal = require(*READ),
                        ids: Annotated[list[UUID], Query(max_length=500)] = []) -> dict[str, Any]:  # noqa: B006
    """Names of some of the network's patients by id (others are left out)."""
    return await store.patient_names(_db(request), who.clinic_id, ids)


@router.get("/attention/items")
async def attention_items(request: Request, who: Principal = require(*READ),
                          ride_hours: Annotated[int, Query(ge=1, le=24 * 14)] = 48) -> Response:
    """Upcoming bookings staff must act on, with patient names: reschedule requests, dosing
    sessions within `ride_hours` whose ride home is not arranged; and open waitlist offers."""
    return _json(await store.attention(_db(request), who.clinic_id, ride_hours))


@router.get("/network", tags=["network"])
async def network_setup(request: Request, who: Principal = require(*ADMIN)) -> Response:
    """The network's set-up for its admins: sites (hours, closures, rooms), providers and
    their hours, staff and their roles."""
    return _json(await store.network(_db(request), who.clinic_id))
