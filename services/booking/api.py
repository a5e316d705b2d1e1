"""HTTP API of the booking service (clinic staff). Every route needs an API key of the
clinic network; a key never sees another network's data (404). Every POST honours an
`Idempotency-Key` header."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import TypeAdapter

from services.booking import availability, bookings, fhir, network, waitlist
from shared.auth import (ADMIN, CARE, READ, SCHEDULE, Principal, forget_cached_keys, require,
                         require_operator)
from services.booking.commands import (AcceptOffer, AddClinic, AddClosure, AddProvider, AddRoom,
                                       AddSite, BookSeries, BookSession, CancelSession,
                                       IssueApiKey, JoinWaitlist, OverrideSessionType,
                                       RegisterPatient, RescheduleSession, UpdateRide)
from services.booking.db import Q
from services.booking.idempotency import idempotent
from shared.errors import Invalid, NotFound
from shared.fhir import FhirJSONResponse
from shared.pagination import MAX_LIMIT, Limit, decode_cursor, page
from shared.validation import SaneDate, SaneDatetime

router = APIRouter()
FIRST = (datetime(1970, 1, 1, tzinfo=UTC), UUID(int=0))
_AVAILABILITY = TypeAdapter(dict[str, UUID | str | list[availability.Slot]])


def _db(request: Request):
    return request.app.state.runtime.db


def _regions(request: Request) -> tuple[str, ...]:
    return tuple(request.app.state.runtime.settings.phone_regions.split(","))


def _within_horizon(request: Request, starts: list[datetime], series: bool = False) -> None:
    """Refuse (422) a start more than `BOOKING_HORIZON_DAYS` ahead. A wall-clock time is read
    as UTC here: hours either way do not matter at that distance. (The past is refused when
    the session is placed.)"""
    days = request.app.state.runtime.settings.horizon_days
    latest = datetime.now(UTC) + timedelta(days=days)
    for i, start in enumerate(starts):
        if (start if start.tzinfo else start.replace(tzinfo=UTC)) > latest:
            raise Invalid(f"a session can be booked at most {days} days ahead",
                          field=f"starts_at.{i}" if series else "starts_at")


def _after(cursor: str | None) -> tuple[datetime, UUID]:
    return decode_cursor(cursor, (datetime, UUID)) or FIRST


def _created_page(rows, limit: int) -> dict[str, Any]:
    return page([dict(r) for r in rows], limit, lambda r: (r["created_at"], r["id"]))


# --- clinic network ----------------------------------------------------------------------


@router.post("/clinics", status_code=201, tags=["network"], dependencies=[Depends(require_operator)])
async def add_clinic(cmd: AddClinic, request: Request) -> JSONResponse:
    """Create a clinic network (platform operator only); returns its first admin API key."""
    async with _db(request).acquire() as conn, conn.transaction():
        return JSONResponse(jsonable_encoder(await network.add_clinic(conn, cmd)), status_code=201)


@router.get("/clinic", tags=["network"])
async def own_clinic(request: Request, who: Principal = require(*READ)) -> dict[str, Any]:
    return dict(await _db(request).fetchrow(Q.get_clinic, who.clinic_id))


@router.post("/api-keys", status_code=201, tags=["network"])
async def issue_api_key(cmd: IssueApiKey, request: Request, who: Principal = require(*ADMIN)):
    return await idempotent(request, who.clinic_id, lambda c: network.issue_api_key(c, who, cmd))


@router.post("/api-keys/{key_id}/revoke", tags=["network"])
async def revoke_api_key(key_id: UUID, request: Request, who: Principal = require(*ADMIN)):
    """Revoke a key; every service refuses it within seconds."""
    forget_cached_keys(request.app)
    return await idempotent(request, who.clinic_id, lambda c: network.revoke_api_key(c, who, key_id), 200)


@router.post("/sites", status_code=201, tags=["network"])
async def add_site(cmd: AddSite, request: Request, who: Principal = require(*ADMIN)):
    return await idempotent(request, who.clinic_id, lambda c: network.add_site(c, who, cmd))


@router.get("/sites", tags=["network"])
async def list_sites(request: Request, who: Principal = require(*READ), limit: Limit = 50,
                     cursor: str | None = None) -> dict[str, Any]:
    rows = await _db(request).fetch(Q.list_sites, who.clinic_id, *_after(cursor), limit + 1)
    return _created_page(rows, limit)


@router.get("/sites/{site_id}", tags=["network"])
async def get_site(site_id: UUID, request: Request, who: Principal = require(*READ)) -> dict:
    async with _db(request).acquire() as conn:
        site = await network.get_site(conn, who.clinic_id, site_id)
        hours = await conn.fetch(Q.site_hours, site_id)
        rooms = await conn.fetch(Q.rooms_of_site, site_id)
    return {**{k: site[k] for k in ("id", "clinic_id", "name", "sms_name", "address", "phone",
                                    "timezone", "default_language", "created_at")},
            "hours": [dict(h) for h in hours], "rooms": [dict(r) for r in rooms]}


@router.post("/sites/{site_id}/closures", status_code=201, tags=["network"])
async def add_closure(site_id: UUID, cmd: AddClosure, request: Request, who: Principal = require(*ADMIN)):
    return await idempotent(request, who.clinic_id, lambda c: network.add_closure(c, who, site_id, cmd))


@router.post("/rooms", status_code=201, tags=["network"])
async def add_room(cmd: AddRoom, request: Request, who: Principal = require(*ADMIN)):
    return await idempotent(request, who.clinic_id, lambda c: network.add_room(c, who, cmd))


@router.post("/providers", status_code=201, tags=["network"])
async def add_provider(cmd: AddProvider, request: Request, who: Principal = require(*ADMIN)):
    return await idempotent(request, who.clinic_id, lambda c: network.add_provider(c, who, cmd))


@router.get("/providers", tags=["network"])
async def list_providers(request: Request, who: Principal = require(*READ), limit: Limit = 50,
                         cursor: str | None = None) -> dict[str, Any]:
    rows = await _db(request).fetch(Q.list_providers, who.clinic_id, *_after(cursor), limit + 1)
    return _created_page(rows, limit)


@router.get("/session-types", tags=["network"])
async def list_session_types(request: Request, who: Principal = require(*READ)) -> list[dict]:
    return [dict(r) for r in await _db(request).fetch(Q.session_types, who.clinic_id)]


@router.post("/session-types/{code}/override", tags=["network"])
async def override_session_type(code: str, cmd: OverrideSessionType, request: Request,
                                who: Principal = require(*ADMIN)):
    return await idempotent(request, who.clinic_id,
                            lambda c: network.override_session_type(c, who, code, cmd), 200)


# --- patients ---------------------------------------------------------------------------


@router.post("/patients", status_code=201, tags=["patients"])
async def register_patient(cmd: RegisterPatient, request: Request, who: Principal = require(*SCHEDULE)):
    async def handle(conn):
        return dict(await network.register_patient(conn, who, cmd, _regions(request)))
    return await idempotent(request, who.clinic_id, handle)


@router.get("/patients", tags=["patients"])
async def list_patients(request: Request, who: Principal = require(*READ), limit: Limit = 50,
                        cursor: str | None = None) -> dict[str, Any]:
    rows = await _db(request).fetch(Q.list_patients, who.clinic_id, *_after(cursor), limit + 1)
    return _created_page(rows, limit)


@router.get("/patients/{patient_id}", tags=["patients"])
async def get_patient(patient_id: UUID, request: Request, who: Principal = require(*READ)) -> dict:
    async with _db(request).acquire() as conn:
        return dict(await network.get_patient(conn, who.clinic_id, patient_id))


# --- bookings ---------------------------------------------------------------------------


@router.post("/bookings", status_code=201, tags=["bookings"])
async def book_session(cmd: BookSession, request: Request, who: Principal = require(*SCHEDULE)):
    """Book one session. A conflict (room, provider or patient already booked, recovery
    included) is a 409 naming what conflicts."""
    _within_horizon(request, [cmd.starts_at])

    async def handle(conn):
        return bookings.view(await bookings.book_session(conn, who, cmd))
    return await idempotent(request, who.clinic_id, handle, one_write=True)


@router.post("/bookings/series", status_code=201, tags=["bookings"])
async def book_series(cmd: BookSeries, request: Request, who: Principal = require(*SCHEDULE)):
    """Book a series (e.g. an induction of 6 sessions): all or nothing."""
    _within_horizon(request, cmd.starts_at, series=True)

    async def handle(conn):
        rows = await bookings.book_series(conn, who, cmd)
        return {"series_id": rows[0]["series_id"], "bookings": [bookings.view(r) for r in rows]}
    return await idempotent(request, who.clinic_id, handle)


@router.get("/bookings", tags=["bookings"])
async def list_bookings(
        request: Request, who: Principal = require(*READ), patient_id: UUID | None = None,
        site_id: UUID | None = None, starts_from: Annotated[SaneDatetime | None, Query(alias="from")] = None,
        starts_before: Annotated[SaneDatetime | None, Query(alias="to")] = None,
        status: Literal["booked", "arrived", "fulfilled", "cancelled", "noshow"] | None = None,
        limit: Limit = 50, cursor: str | None = None) -> dict[str, Any]:
    async with _db(request).acquire() as conn:
        ids = await conn.fetch(Q.list_bookings, who.clinic_id, patient_id, site_id, starts_from,
                               starts_before, status, *_after(cursor), limit + 1)
        rows = [bookings.view(await bookings.load(conn, who.clinic_id, r["id"])) for r in ids]
    return page(rows, limit, lambda r: (datetime.fromisoformat(r["starts_at"]), r["id"]))


@router.get("/bookings/attention", tags=["bookings"])
async def bookings_needing_staff(request: Request, who: Principal = require(*READ),
                                 limit: Limit = 100) -> list[dict]:
    """Upcoming bookings staff should act on: reschedule requested, or a dosing session
    whose ride home is not confirmed."""
    async with _db(request).acquire() as conn:
        ids = await conn.fetch(Q.bookings_needing_staff, who.clinic_id, limit)
        return [bookings.view(await bookings.load(conn, who.clinic_id, r["id"])) for r in ids]


@router.get("/bookings/{booking_id}", tags=["bookings"])
async def get_booking(booking_id: UUID, request: Request, who: Principal = require(*READ)) -> dict:
    async with _db(request).acquire() as conn:
        return bookings.view(await bookings.load(conn, who.clinic_id, booking_id))


def _booking_action(action):
    async def run(conn):
        return bookings.view(await action(conn))
    return run


@router.post("/bookings/{booking_id}/reschedule", tags=["bookings"])
async def reschedule(booking_id: UUID, cmd: RescheduleSession, request: Request,
                     who: Principal = require(*SCHEDULE)):
    _within_horizon(request, [cmd.starts_at])
    return await idempotent(request, who.clinic_id, _booking_action(
        lambda c: bookings.reschedule(c, who, booking_id, cmd)), 200)


@router.post("/bookings/{booking_id}/cancel", tags=["bookings"])
async def cancel(booking_id: UUID, cmd: CancelSession, request: Request,
                 who: Principal = require(*SCHEDULE)):
    return await idempotent(request, who.clinic_id, _booking_action(
        lambda c: bookings.cancel(c, who, who.clinic_id, booking_id, cmd)), 200)


@router.post("/bookings/{booking_id}/check-in", tags=["bookings"])
async def check_in(booking_id: UUID, request: Request, who: Principal = require(*CARE)):
    return await idempotent(request, who.clinic_id, _booking_action(
        lambda c: bookings.check_in(c, who, booking_id)), 200)


@router.post("/bookings/{booking_id}/complete", tags=["bookings"])
async def complete(booking_id: UUID, request: Request, who: Principal = require(*CARE)):
    return await idempotent(request, who.clinic_id, _booking_action(
        lambda c: bookings.complete(c, who, booking_id)), 200)


@router.post("/bookings/{booking_id}/no-show", tags=["bookings"])
async def no_show(booking_id: UUID, request: Request, who: Principal = require(*CARE)):
    return await idempotent(request, who.clinic_id, _booking_action(
        lambda c: bookings.no_show(c, who, booking_id)), 200)


@router.post("/bookings/{booking_id}/ride", tags=["bookings"])
async def update_ride(booking_id: UUID, cmd: UpdateRide, request: Request, who: Principal = require(*CARE)):
    return await idempotent(request, who.clinic_id, _booking_action(
        lambda c: bookings.update_ride(c, who.clinic_id, booking_id, cmd)), 200)


# --- availability and waitlist -----------------------------------------------------------


@router.get("/sites/{site_id}/availability", tags=["availability"])
async def site_availability(
        site_id: UUID, session_type: str, request: Request, who: Principal = require(*READ),
        first_day: Annotated[SaneDate | None, Query(alias="from")] = None,
        last_day: Annotated[SaneDate | None, Query(alias="to")] = None,
        step_minutes: Annotated[int, Query(ge=5, le=240)] = 15) -> Response:
    """Free slots for a session type at a site between two local dates (inclusive)."""
    async with _db(request).acquire() as conn:
        site = await network.get_site(conn, who.clinic_id, site_id)
        stype = await network.session_type(conn, who.clinic_id, session_type)
        today = datetime.now(ZoneInfo(site["timezone"])).date()
        first = first_day or today
        slots = await availability.free_slots(conn, site, stype, first, last_day or first,
                                              step_minutes)
    body = {"site_id": site_id, "session_type": session_type, "timezone": site["timezone"],
            "slots": slots}
    return Response(_AVAILABILITY.dump_json(body), media_type="application/json")


@router.post("/waitlist", status_code=201, tags=["waitlist"])
async def join_waitlist(cmd: JoinWaitlist, request: Request, who: Principal = require(*SCHEDULE)):
    async def handle(conn):
        return dict(await waitlist.join(conn, who, cmd))
    return await idempotent(request, who.clinic_id, handle)


@router.get("/waitlist", tags=["waitlist"])
async def list_waitlist(request: Request, who: Principal = require(*READ), site_id: UUID | None = None,
                        limit: Limit = 50, cursor: str | None = None) -> dict[str, Any]:
    rows = await _db(request).fetch(Q.list_waitlist, who.clinic_id, site_id, *_after(cursor), limit + 1)
    return _created_page(rows, limit)


@router.post("/waitlist/offers/{offer_id}/accept", status_code=201, tags=["waitlist"])
async def accept_offer(offer_id: UUID, cmd: AcceptOffer, request: Request,
                       who: Principal = require(*SCHEDULE)):
    """The patient takes a freed slot; the first to accept gets it (409 for the others)."""
    return await idempotent(request, who.clinic_id, _booking_action(
        lambda c: waitlist.accept(c, who.clinic_id, offer_id, cmd.patient_id)))


# --- FHIR R4 ------------------------------------------------------------------------------

@router.get("/fhir/Appointment/{booking_id}", tags=["fhir"], response_class=FhirJSONResponse)
async def fhir_appointment(booking_id: UUID, request: Request, who: Principal = require(*READ)):
    async with _db(request).acquire() as conn:
        row = await bookings.load(conn, who.clinic_id, booking_id)
    return FhirJSONResponse(fhir.appointment(row))


@router.get("/fhir/Appointment", tags=["fhir"], response_class=FhirJSONResponse)
async def fhir_search(request: Request, patient: str, who: Principal = require(*READ),
                      date_: Annotated[list[str] | None, Query(alias="date")] = None):
    """Search by `patient` (id or Patient/id) and `date` (FHIR prefixes eq/ge/gt/le/lt)."""
    try:
        patient_id = UUID(patient.removeprefix("Patient/"))
    except ValueError:
        raise NotFound("unknown patient", field="patient") from None
    lower, upper = fhir.date_bounds(date_ or [])
    rows = []
    async with _db(request).acquire() as conn:
        cursor = FIRST
        while True:
            ids = await conn.fetch(Q.list_bookings, who.clinic_id, patient_id, None, lower, upper,
                                   None, *cursor, MAX_LIMIT)
            rows += [await bookings.load(conn, who.clinic_id, r["id"]) for r in ids]
            if len(ids) < MAX_LIMIT:
                break
            cursor = (rows[-1]["starts_at"], rows[-1]["id"])
    return FhirJSONResponse(fhir.bundle(rows, str(request.base_url).rstrip("/")))
