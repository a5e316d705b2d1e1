"""HTTP API of the booking service (clinic staff). Every route needs an API key of the
clinic network; a key never sees another network's data (404). Every POST honours an
`Idempotency-Key` header."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import TypeAdapter

from services.booking import availability, bookings, fhir, network, rules, store, waitlist
from services.booking.commands import (
    AcceptOffer,
    AddClinic,
    AddClosure,
    AddProvider,
    AddRoom,
    AddSite,
    BookSeries,
    BookSession,
    CancelSession,
    IssueApiKey,
    JoinWaitlist,
    OverrideSessionType,
    RegisterPatient,
    RescheduleSession,
    SetPatientTimezone,
    SetPrepItems,
    SetRemoteWays,
    UpdateProvider,
    UpdateRide,
)
from services.booking.idempotency import idempotent
from services.booking.model import Booking, as_dict
from shared.audit import OPERATOR, record
from shared.auth import (
    ADMIN,
    CARE,
    READ,
    SCHEDULE,
    Principal,
    forget_cached_keys,
    require,
    require_operator,
)
from shared.db import Connection
from shared.errors import NotFound
from shared.fhir import FhirJSONResponse
from shared.pagination import MAX_LIMIT, Limit, decode_cursor, page
from shared.runtime import db_of as _db
from shared.validation import SaneDate, SaneDatetime

router = APIRouter()
FIRST = (datetime(1970, 1, 1, tzinfo=UTC), UUID(int=0))
_AVAILABILITY = TypeAdapter(dict[str, UUID | str | list[availability.Slot]])


def _regions(request: Request) -> tuple[str, ...]:
    return tuple(request.app.state.runtime.settings.phone_regions.split(","))


def _within_horizon(request: Request, starts: list[datetime], series: bool = False) -> None:
    """Refuse (422) a start more than `BOOKING_HORIZON_DAYS` ahead (rules.check_horizon)."""
    rules.check_horizon(starts, request.app.state.runtime.settings.horizon_days,
                        datetime.now(UTC), series)


def _after(cursor: str | None) -> tuple[datetime, UUID]:
    return decode_cursor(cursor, (datetime, UUID)) or FIRST


def _created_page(rows: list[Any], limit: int) -> dict[str, Any]:
    return page([as_dict(r) for r in rows], limit, lambda r: (r["created_at"], r["id"]))


def _bookings_page(rows: list[Booking], limit: int) -> dict[str, Any]:
    return page([bookings.view(b) for b in rows], limit,
                lambda r: (datetime.fromisoformat(r["starts_at"]), r["id"]))


# --- clinic network ----------------------------------------------------------------------


@router.post(
    "/clinics", status_code=201, tags=["network"], dependencies=[Depends(require_operator)]
)
async def add_clinic(cmd: AddClinic, request: Request) -> JSONResponse:
    """Create a clinic network (platform operator only); returns its first admin API key."""
    async with _db(request).acquire() as conn, conn.transaction():
        clinic = await network.add_clinic(conn, cmd)
        await record(conn, request, status=201, actor=replace(OPERATOR, clinic_id=clinic["id"]))
        return JSONResponse(jsonable_encoder(clinic), status_code=201)


@router.get("/clinic", tags=["network"])
async def own_clinic(request: Request, who: Principal = require(*READ)) -> dict[str, Any]:
    clinic = await store.get_clinic(_db(request), who.clinic_id)
    if clinic is None:  # not reached: keys and tokens belong to a network that exists
        raise NotFound("unknown clinic")
    return as_dict(clinic)


@router.post("/api-keys", status_code=201, tags=["network"])
async def issue_api_key(
    cmd: IssueApiKey, request: Request, who: Principal = require(*ADMIN)
) -> Response:
    return await idempotent(request, who.clinic_id, lambda c: network.issue_api_key(c, who, cmd))


@router.post("/api-keys/{key_id}/revoke", tags=["network"])
async def revoke_api_key(
    key_id: UUID, request: Request, who: Principal = require(*ADMIN)
) -> Response:
    """Revoke a key; every service refuses it within seconds."""
    forget_cached_keys(request.app)
    return await idempotent(
        request, who.clinic_id, lambda c: network.revoke_api_key(c, who, key_id), 200
    )


@router.post("/sites", status_code=201, tags=["network"])
async def add_site(cmd: AddSite, request: Request, who: Principal = require(*ADMIN)) -> Response:
    return await idempotent(request, who.clinic_id, lambda c: network.add_site(c, who, cmd))


@router.get("/sites", tags=["network"])
async def list_sites(request: Request, who: Principal = require(*READ), limit: Limit = 50,
                     cursor: str | None = None) -> dict[str, Any]:
    return _created_page(await store.list_sites(_db(request), who.clinic_id, _after(cursor),
                                                limit + 1), limit)


@router.get("/sites/{site_id}", tags=["network"])
async def get_site(
    site_id: UUID, request: Request, who: Principal = require(*READ)
) -> dict[str, Any]:
    async with _db(request).acquire() as conn:
        site = await network.get_site(conn, who.clinic_id, site_id)
        hours = await store.site_hours(conn, site_id)
        rooms = await store.rooms_of_site(conn, site_id)
    return {**{k: getattr(site, k) for k in ("id", "clinic_id", "name", "sms_name", "address",
                                             "phone", "timezone", "default_language",
                                             "created_at")},
            "hours": [as_dict(h) for h in hours], "rooms": [as_dict(r) for r in rooms]}


@router.post("/sites/{site_id}/closures", status_code=201, tags=["network"])
async def add_closure(
    site_id: UUID, cmd: AddClosure, request: Request, who: Principal = require(*ADMIN)
) -> Response:
    async def handle(conn: Connection) -> dict[str, Any]:
        return as_dict(await network.add_closure(conn, who, site_id, cmd))
    return await idempotent(request, who.clinic_id, handle)


@router.post("/rooms", status_code=201, tags=["network"])
async def add_room(cmd: AddRoom, request: Request, who: Principal = require(*ADMIN)) -> Response:
    async def handle(conn: Connection) -> dict[str, Any]:
        return as_dict(await network.add_room(conn, who, cmd))
    return await idempotent(request, who.clinic_id, handle)


@router.post("/providers", status_code=201, tags=["network"])
async def add_provider(
    cmd: AddProvider, request: Request, who: Principal = require(*ADMIN)
) -> Response:
    return await idempotent(request, who.clinic_id, lambda c: network.add_provider(c, who, cmd))


@router.patch("/providers/{provider_id}", tags=["network"])
async def update_provider(provider_id: UUID, cmd: UpdateProvider, request: Request,
                          who: Principal = require(*ADMIN)) -> Response:
    """Change a provider: whether they take the consultations booked online (the public
    page's free times follow at once; consultations already booked stay)."""
    return await idempotent(request, who.clinic_id,
                            lambda c: network.update_provider(c, who, provider_id, cmd), 200)


@router.get("/providers", tags=["network"])
async def list_providers(request: Request, who: Principal = require(*READ), limit: Limit = 50,
                         cursor: str | None = None) -> dict[str, Any]:
    return _created_page(await store.list_providers(_db(request), who.clinic_id, _after(cursor),
                                                    limit + 1), limit)


@router.post("/clinic/remote-visits", tags=["network"])
async def set_remote_ways(cmd: SetRemoteWays, request: Request,
                          who: Principal = require(*ADMIN)) -> Response:
    """How patients join remote visits: the network's call-in number for phone visits and
    video link for video and home visits (`{code}` becomes the booking's code)."""
    async def handle(conn: Connection) -> dict[str, Any]:
        return await network.set_remote_ways(conn, who, cmd)
    return await idempotent(request, who.clinic_id, handle, 200)


@router.get("/session-types", tags=["network"])
async def list_session_types(
    request: Request, who: Principal = require(*READ)
) -> list[dict[str, Any]]:
    return [as_dict(t) for t in await store.session_types(_db(request), who.clinic_id)]


@router.post("/session-types/{code}/override", tags=["network"])
async def override_session_type(code: str, cmd: OverrideSessionType, request: Request,
                                who: Principal = require(*ADMIN)) -> Response:
    async def handle(conn: Connection) -> dict[str, Any]:
        return as_dict(await network.override_session_type(conn, who, code, cmd))
    return await idempotent(request, who.clinic_id, handle, 200)


@router.post("/session-types/{code}/prep-items", tags=["network"])
async def set_prep_items(code: str, cmd: SetPrepItems, request: Request,
                         who: Principal = require(*ADMIN)) -> Response:
    """What the session type's prep texts say to bring (en, fr, es), the network's words."""
    async def handle(conn: Connection) -> dict[str, Any]:
        return as_dict(await network.set_prep_items(conn, who, code, cmd))
    return await idempotent(request, who.clinic_id, handle, 200)


# --- patients ---------------------------------------------------------------------------


@router.post("/patients", status_code=201, tags=["patients"])
async def register_patient(
    cmd: RegisterPatient, request: Request, who: Principal = require(*SCHEDULE)
) -> Response:
    async def handle(conn: Connection) -> dict[str, Any]:
        return as_dict(await network.register_patient(conn, who, cmd, _regions(request)))
    return await idempotent(request, who.clinic_id, handle)


@router.get("/patients", tags=["patients"])
async def list_patients(request: Request, who: Principal = require(*READ), limit: Limit = 50,
                        cursor: str | None = None) -> dict[str, Any]:
    return _created_page(await store.list_patients(_db(request), who.clinic_id, _after(cursor),
                                                   limit + 1), limit)


@router.get("/patients/{patient_id}", tags=["patients"])
async def get_patient(
    patient_id: UUID, request: Request, who: Principal = require(*READ)
) -> dict[str, Any]:
    async with _db(request).acquire() as conn:
        return as_dict(await network.get_patient(conn, who.clinic_id, patient_id))


@router.post("/patients/{patient_id}/timezone", tags=["patients"])
async def set_patient_timezone(patient_id: UUID, cmd: SetPatientTimezone, request: Request,
                               who: Principal = require(*SCHEDULE)) -> Response:
    """The patient's own time zone (null: their site's); bookings made from now on carry it."""
    async def handle(conn: Connection) -> dict[str, Any]:
        return as_dict(await network.set_patient_timezone(conn, who.clinic_id, patient_id,
                                                          cmd.timezone))
    return await idempotent(request, who.clinic_id, handle, 200)


# --- bookings ---------------------------------------------------------------------------


@router.post("/bookings", status_code=201, tags=["bookings"])
async def book_session(
    cmd: BookSession, request: Request, who: Principal = require(*SCHEDULE)
) -> Response:
    """Book one session, in clinic (a room), by phone or video, or at home (with a support
    person). A conflict (room, provider or patient already booked, recovery included) is a
    409 naming what conflicts."""
    _within_horizon(request, [cmd.starts_at])
    visit = bookings.visit_from(cmd, _regions(request))

    async def handle(conn: Connection,
                     audit: tuple[Any, ...] | None = None) -> dict[str, Any]:
        return bookings.view(await bookings.book_session(conn, who, cmd, visit=visit, audit=audit))
    return await idempotent(request, who.clinic_id, handle, one_write=True)


@router.post("/bookings/series", status_code=201, tags=["bookings"])
async def book_series(
    cmd: BookSeries, request: Request, who: Principal = require(*SCHEDULE)
) -> Response:
    """Book a series (e.g. an induction of 6 sessions): all or nothing; every session in the
    same mode (in clinic, by phone or video, or at home with the same support person)."""
    _within_horizon(request, cmd.starts_at, series=True)
    visit = bookings.visit_from(cmd, _regions(request))

    async def handle(conn: Connection) -> dict[str, Any]:
        rows = await bookings.book_series(conn, who, cmd, visit=visit)
        return {"series_id": rows[0].series_id, "bookings": [bookings.view(r) for r in rows]}
    return await idempotent(request, who.clinic_id, handle)


@router.get("/bookings", tags=["bookings"])
async def list_bookings(
    request: Request,
    who: Principal = require(*READ),
    patient_id: UUID | None = None,
    site_id: UUID | None = None,
    starts_from: Annotated[SaneDatetime | None, Query(alias="from")] = None,
    starts_before: Annotated[SaneDatetime | None, Query(alias="to")] = None,
    status: Literal["booked", "arrived", "fulfilled", "cancelled", "noshow"] | None = None,
    limit: Limit = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    rows = await store.list_bookings(
        _db(request), who.clinic_id, patient_id=patient_id, site_id=site_id,
        starts_from=starts_from, starts_before=starts_before, status=status,
        after=_after(cursor), limit=limit + 1)
    return _bookings_page(rows, limit)


@router.get("/bookings/attention", tags=["bookings"])
async def bookings_needing_staff(request: Request, who: Principal = require(*READ),
                                 limit: Limit = 100) -> list[dict[str, Any]]:
    """Upcoming bookings staff should act on: reschedule requested, or a dosing session
    whose ride home is not confirmed."""
    return [bookings.view(b)
            for b in await store.bookings_needing_staff(_db(request), who.clinic_id, limit)]


@router.get("/bookings/{booking_id}", tags=["bookings"])
async def get_booking(
    booking_id: UUID, request: Request, who: Principal = require(*READ)
) -> dict[str, Any]:
    async with _db(request).acquire() as conn:
        return bookings.view(await bookings.load(conn, who.clinic_id, booking_id))


def _booking_action(
        action: Callable[[Connection], Awaitable[Booking]],
) -> Callable[[Connection], Awaitable[dict[str, Any]]]:
    async def run(conn: Connection) -> dict[str, Any]:
        return bookings.view(await action(conn))
    return run


@router.post("/bookings/{booking_id}/reschedule", tags=["bookings"])
async def reschedule(booking_id: UUID, cmd: RescheduleSession, request: Request,
                     who: Principal = require(*SCHEDULE)) -> Response:
    _within_horizon(request, [cmd.starts_at])
    return await idempotent(request, who.clinic_id, _booking_action(
        lambda c: bookings.reschedule(c, who, booking_id, cmd)), 200)


@router.post("/bookings/{booking_id}/cancel", tags=["bookings"])
async def cancel(booking_id: UUID, cmd: CancelSession, request: Request,
                 who: Principal = require(*SCHEDULE)) -> Response:
    return await idempotent(request, who.clinic_id, _booking_action(
        lambda c: waitlist.cancel(c, who, booking_id, cmd)), 200)


@router.post("/bookings/{booking_id}/check-in", tags=["bookings"])
async def check_in(booking_id: UUID, request: Request, who: Principal = require(*CARE)) -> Response:
    return await idempotent(request, who.clinic_id, _booking_action(
        lambda c: bookings.check_in(c, who, booking_id)), 200)


@router.post("/bookings/{booking_id}/complete", tags=["bookings"])
async def complete(booking_id: UUID, request: Request, who: Principal = require(*CARE)) -> Response:
    return await idempotent(request, who.clinic_id, _booking_action(
        lambda c: bookings.complete(c, who, booking_id)), 200)


@router.post("/bookings/{booking_id}/no-show", tags=["bookings"])
async def no_show(booking_id: UUID, request: Request, who: Principal = require(*CARE)) -> Response:
    return await idempotent(request, who.clinic_id, _booking_action(
        lambda c: bookings.no_show(c, who, booking_id)), 200)


@router.post("/bookings/{booking_id}/ride", tags=["bookings"])
async def update_ride(
    booking_id: UUID, cmd: UpdateRide, request: Request, who: Principal = require(*CARE)
) -> Response:
    return await idempotent(request, who.clinic_id, _booking_action(
        lambda c: bookings.update_ride(c, who.clinic_id, booking_id, cmd)), 200)


@router.post("/bookings/{booking_id}/support-person/confirm", tags=["bookings"])
async def confirm_support(booking_id: UUID, request: Request,
                          who: Principal = require(*CARE)) -> Response:
    """The support person of a home session confirmed they will be there."""
    return await idempotent(request, who.clinic_id, _booking_action(
        lambda c: bookings.confirm_support(c, who.clinic_id, booking_id)), 200)


# --- availability and waitlist -----------------------------------------------------------


@router.get("/sites/{site_id}/availability", tags=["availability"])
async def site_availability(
        site_id: UUID, session_type: str, request: Request, who: Principal = require(*READ),
        first_day: Annotated[SaneDate | None, Query(alias="from")] = None,
        last_day: Annotated[SaneDate | None, Query(alias="to")] = None,
        step_minutes: Annotated[int, Query(ge=5, le=240)] = 15,
        mode: Literal["clinic", "phone", "video", "home"] = "clinic") -> Response:
    """Free slots for a session type at a site between two local dates (inclusive); by
    phone or video, or at home (`mode`), a free provider is enough (no room)."""
    async with _db(request).acquire() as conn:
        site = await network.get_site(conn, who.clinic_id, site_id)
        stype = await network.session_type(conn, who.clinic_id, session_type)
        today = datetime.now(ZoneInfo(site.timezone)).date()
        first = first_day or today
        slots = await availability.free_slots(conn, site, stype, first, last_day or first,
                                              step_minutes, needs_room=mode == "clinic")
    body: dict[str, UUID | str | list[availability.Slot]] = {
        "site_id": site_id, "session_type": session_type, "timezone": site.timezone,
        "slots": slots}
    return Response(_AVAILABILITY.dump_json(body), media_type="application/json")


@router.post("/waitlist", status_code=201, tags=["waitlist"])
async def join_waitlist(
    cmd: JoinWaitlist, request: Request, who: Principal = require(*SCHEDULE)
) -> Response:
    async def handle(conn: Connection) -> dict[str, Any]:
        return as_dict(await waitlist.join(conn, who, cmd))
    return await idempotent(request, who.clinic_id, handle)


@router.get("/waitlist", tags=["waitlist"])
async def list_waitlist(
    request: Request,
    who: Principal = require(*READ),
    site_id: UUID | None = None,
    limit: Limit = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    return _created_page(await store.list_waitlist(_db(request), who.clinic_id, site_id,
                                                   _after(cursor), limit + 1), limit)


@router.post("/waitlist/offers/{offer_id}/accept", status_code=201, tags=["waitlist"])
async def accept_offer(offer_id: UUID, cmd: AcceptOffer, request: Request,
                       who: Principal = require(*SCHEDULE)) -> Response:
    """The patient takes a freed slot; the first to accept gets it (409 for the others)."""
    return await idempotent(request, who.clinic_id, _booking_action(
        lambda c: waitlist.accept(c, who.clinic_id, offer_id, cmd.patient_id)))


# --- FHIR R4 ------------------------------------------------------------------------------

@router.get("/fhir/Appointment/{booking_id}", tags=["fhir"], response_class=FhirJSONResponse)
async def fhir_appointment(
    booking_id: UUID, request: Request, who: Principal = require(*READ)
) -> FhirJSONResponse:
    async with _db(request).acquire() as conn:
        booking = await bookings.load(conn, who.clinic_id, booking_id)
    return FhirJSONResponse(fhir.appointment(booking))


@router.get("/fhir/Appointment", tags=["fhir"], response_class=FhirJSONResponse)
async def fhir_search(
    request: Request,
    patient: str,
    who: Principal = require(*READ),
    date_: Annotated[list[str] | None, Query(alias="date")] = None,
) -> FhirJSONResponse:
    """Search by `patient` (id or Patient/id) and `date` (FHIR prefixes eq/ge/gt/le/lt)."""
    try:
        patient_id = UUID(patient.removeprefix("Patient/"))
    except ValueError:
        raise NotFound("unknown patient", field="patient") from None
    lower, upper = fhir.date_bounds(date_ or [])
    found: list[Booking] = []
    async with _db(request).acquire() as conn:
        while True:  # a page of full bookings per query
            after = (found[-1].starts_at, found[-1].id) if found else FIRST
            rows = await store.list_bookings(conn, who.clinic_id, patient_id=patient_id,
                                             starts_from=lower, starts_before=upper, after=after,
                                             limit=MAX_LIMIT)
            found += rows
            if len(rows) < MAX_LIMIT:
                break
    return FhirJSONResponse(fhir.bundle(found, str(request.base_url).rstrip("/")))
