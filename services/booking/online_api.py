"""The public API of online consultation booking (services/booking/online.py): no key, for
the console's public page `/book/<slug>`. The visitor's address is the peer's, or the last
X-Forwarded-For entry when the peer is a trusted proxy (the console). Errors name the field
and never echo a value; nothing here says whether a number or a name is a patient's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse

from services.booking import online, store
from services.booking.commands import AskForConsultation, CheckCode
from services.booking.model import Clinic
from services.booking.network import normalise_mobile
from services.booking.online_rules import REFUSALS, SLUG, SLUG_MAX, Limits
from services.booking.settings import BookingSettings
from services.booking.staff_api import client_address
from shared.audit import Actor, record
from shared.auth import SCHEDULE, Principal, require
from shared.consent import ONLINE_CONSENT_VERSION
from shared.errors import NotFound
from shared.runtime import db_of as _db
from shared.runtime import settings_of

router = APIRouter(tags=["online booking"])
Slug = Path(min_length=1, max_length=SLUG_MAX, pattern=SLUG)


def _settings(request: Request) -> BookingSettings:
    settings: BookingSettings = settings_of(request)
    return settings


async def network(request: Request, slug: str = Slug) -> Clinic:
    """The network whose public page this is, or 404."""
    clinic = await store.clinic_by_slug(_db(request), slug)
    if clinic is None:
        raise NotFound("unknown clinic network", field="slug")
    return clinic


def visitor(clinic: Clinic) -> Actor:
    """Who acts on the public page, as the network's audit trail names them: nobody known."""
    return Actor("anonymous", clinic.id, label="online booking page")


def _lead(request: Request) -> timedelta:
    return timedelta(minutes=_settings(request).online_lead_minutes)


@router.get("/online/{slug}")
async def public_page(request: Request, clinic: Clinic = Depends(network)) -> dict[str, Any]:
    """What the public page shows: the network's name, its sites' time zones (the first is
    the default), the consent wording's version and the free consultations of the next 14
    days (UTC start times; 15 minutes by phone or video)."""
    async with _db(request).acquire() as conn:
        sites = await store.consultation_sites(conn, clinic.id)
        free = await online.free_consultations(conn, clinic.id, datetime.now(UTC), _lead(request))
    return {"name": clinic.name, "slug": clinic.slug, "phone": clinic.phone,
            "timezones": list(dict.fromkeys(s.timezone for s in sites)),
            "consent_version": ONLINE_CONSENT_VERSION, "modes": ["phone", "video"],
            "minutes": 15, "slots": [f.starts_at.isoformat() for f in free]}


@router.post("/online/{slug}/requests", status_code=201)
async def ask_for_consultation(cmd: AskForConsultation, request: Request,
                               clinic: Clinic = Depends(network)) -> dict[str, Any]:
    """Ask for a consultation at one of the free times: a 6-digit code is texted to the
    number (valid 10 minutes). 429 past the limits per number, address and network."""
    settings = _settings(request)
    phone = normalise_mobile(cmd.phone, tuple(settings.phone_regions.split(",")))
    limits = Limits(settings.online_codes_per_number, settings.online_codes_per_address,
                    settings.online_codes_per_network)
    async with _db(request).acquire() as conn, conn.transaction():
        asked = await online.ask(conn, clinic, cmd, phone, client_address(request),
                                 datetime.now(UTC), limits=limits, lead=_lead(request),
                                 pepper=settings.online_code_pepper,
                                 key=settings.online_code_key)
        await record(conn, request, actor=visitor(clinic), status=201)  # with the request
        return asked


@router.post("/online/{slug}/requests/{request_id}/verify", status_code=201)
async def verify_and_book(request_id: UUID, cmd: CheckCode, request: Request,
                          clinic: Clinic = Depends(network)) -> JSONResponse:
    """The code texted for a request: the consultation is booked (a new patient, or the
    network's patient with this number and name: the answer does not say which). A wrong
    code is a 422 on `code` (5 tries), an expired one a 422, too many a 429. The booking
    (with the patient made or matched) or the wrong try goes into the audit trail in its
    transaction, naming the patient."""
    async with _db(request).acquire() as conn, conn.transaction():
        verdict, booked, patient_id = await online.verify(
            conn, clinic, request_id, cmd.code, datetime.now(UTC),
            _settings(request).online_code_pepper)
        if booked is not None or verdict == "wrong":
            await record(conn, request, actor=visitor(clinic),
                         patients=[patient_id] if patient_id else [],
                         status=201 if booked is not None else REFUSALS[verdict][0])
    if booked is None:
        status, message = REFUSALS[verdict]
        return JSONResponse({"error": verdict, "message": message, "field": "code"},
                            status_code=status)
    return JSONResponse({k: str(v) for k, v in booked.items()}, status_code=201)


@router.post("/bookings/{booking_id}/lead-seen", tags=["bookings"])
async def lead_seen(booking_id: UUID, request: Request,
                    who: Principal = require(*SCHEDULE)) -> dict[str, Any]:
    """Staff saw (and will call) a consultation booked online: it leaves the new leads."""
    async with _db(request).acquire() as conn, conn.transaction():
        if not await store.lead_seen(conn, who.clinic_id, booking_id):
            raise NotFound("unknown online booking")
        await record(conn, request)
    return {"id": booking_id, "lead_seen": True}
