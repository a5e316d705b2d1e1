"""Booking, moving, cancelling and following sessions through their day.

Plain functions on one connection, inside the caller's transaction; each queues its events
in the outbox there. Double-booking is prevented by the exclusion constraints on `bookings`
(room, provider and patient, recovery included), so it holds under any concurrency; the
checks here only make the errors clear. The rules they apply are services/booking/rules.py
(the lifecycle's transition table among them); the SQL is services/booking/store.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from services.booking import rules, store
from services.booking.commands import (
    BookSeries,
    BookSession,
    CancelSession,
    RescheduleSession,
    UpdateRide,
)
from services.booking.localtime import local_iso, to_utc
from services.booking.model import (
    CLINIC_VISIT,
    Booking,
    BookingContext,
    Context,
    Placement,
    SessionType,
    Span,
    Visit,
)
from services.booking.network import check_for_texts, normalise_mobile
from shared import tracing
from shared.auth import Principal
from shared.db import Connection
from shared.errors import Conflict, Invalid, NotFound
from shared.events import Event
from shared.events.base import current_correlation_id
from shared.events.booking import (
    PatientCheckedIn,
    PatientNoShow,
    RideDetailsUpdated,
    SessionBooked,
    SessionCancelled,
    SessionCompleted,
    SessionRescheduled,
    SupportPerson,
)
from shared.sms import JOIN_LINK_MAX

NO_BOOKING = UUID(int=0)


# --- reading ---------------------------------------------------------------------------


async def load(conn: Connection, clinic_id: UUID, booking_id: UUID) -> Booking:
    """The network's booking, or 404."""
    booking = await store.booking(conn, clinic_id, booking_id)
    if booking is None:
        raise NotFound("unknown booking")
    return booking


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def view(b: Booking) -> dict[str, Any]:
    """A booking as the API shows it: UTC and site-local times side by side (ISO 8601
    strings, the same whichever route returns them)."""
    tz = b.about.site_timezone
    return {
        "id": b.id, "clinic_id": b.clinic_id, "site_id": b.site_id,
        "room_id": b.room_id, "provider_id": b.provider_id,
        "patient_id": b.patient_id, "series_id": b.series_id,
        "session_type": b.session_type, "is_dosing": b.is_dosing,
        "status": b.status, "version": b.version,
        "starts_at": _iso(b.starts_at), "ends_at": _iso(b.ends_at),
        "occupied_until": _iso(b.occupied_until),
        "starts_at_local": local_iso(b.starts_at, tz),
        "ends_at_local": local_iso(b.ends_at, tz),
        "occupied_until_local": local_iso(b.occupied_until, tz),
        "site_timezone": tz,
        "confirmed_by_patient": b.confirmed_at is not None,
        "confirmed_at": _iso(b.confirmed_at),
        "ride": {"status": b.ride_status, "driver_name": b.ride_driver_name},
        "reschedule_requested_at": _iso(b.reschedule_requested_at),
        "cancel_reason": b.cancel_reason, "cancelled_by": b.cancelled_by,
        "created_at": _iso(b.created_at), "updated_at": _iso(b.updated_at),
        "mode": b.mode, "source": b.source, "join_link": b.join_link,
        "support_person": None if b.support_name is None else {
            "name": b.support_name, "phone": b.support_phone,
            "sms_consent": b.support_consent, "confirmed": b.support_confirmed_at is not None,
            "confirmed_at": _iso(b.support_confirmed_at)},
    }


# --- events ----------------------------------------------------------------------------


def appointment_fields(booking_id: UUID, version: int, series_id: UUID | None, site_id: UUID,
                       session_type: str, is_dosing: bool, where: Placement,
                       about: Context, visit: Visit = CLINIC_VISIT,
                       join_link: str | None = None) -> dict[str, Any]:
    """What `SessionBooked` and `SessionRescheduled` say about the appointment (the event's
    `ends_at` is the end of recovery)."""
    support = (SupportPerson(name=visit.support_name, phone_e164=visit.support_phone)
               if visit.support_consent and visit.support_name and visit.support_phone else None)
    return dict(
        mode=visit.mode, join_link=join_link, patient_timezone=about.patient_timezone,
        support_person=support, prep_items=about.prep_text,
        booking_id=booking_id, version=version, series_id=series_id,
        clinic_name=about.clinic_name, clinic_sms_name=about.clinic_sms_name,
        clinic_phone=about.clinic_phone, site_id=site_id, site_name=about.site_name,
        site_sms_name=about.site_sms_name, site_address=about.site_address,
        site_phone=about.site_phone, site_timezone=about.site_timezone,
        site_region=about.site_region, room_id=where.room_id, provider_id=where.provider_id,
        session_type=session_type, is_dosing=is_dosing, fasting_rule=about.fasting_rule,
        starts_at=where.starts_at, ends_at=where.occupied_until,
        patient_language=about.patient_language, ride_contact=about.ride_contact)


def _placement(b: Booking) -> Placement:
    return Placement(b.starts_at, b.ends_at, b.occupied_until, b.room_id, b.provider_id)


def visit_of(b: Booking) -> Visit:
    """How a booked session is attended."""
    return Visit(b.mode, b.join_link, b.support_name, b.support_phone, b.support_consent)


def change_fields(b: Booking) -> dict[str, Any]:
    """What the events of a change of status say about the booking."""
    return dict(booking_id=b.id, version=b.version, session_type=b.session_type,
                is_dosing=b.is_dosing, site_id=b.site_id, starts_at=b.starts_at)


async def _emit(conn: Connection, b: Booking, *payloads: Event) -> None:
    await store.emit(conn, [store.event(p, b.clinic_id, b.patient_id) for p in payloads])


# --- how a session is attended ---------------------------------------------------------


def visit_from(cmd: BookSession | BookSeries,
               regions: tuple[str, ...] = ("US", "CA")) -> Visit:
    """The visit a booking asks for, its fields checked (422 naming the field): a join link
    is an https link or a call-in number that texts can carry; a support person's number is
    a mobile one."""
    link = cmd.join_link
    if link is not None:
        if cmd.mode == "phone":
            link = normalise_mobile(link, regions, "join_link") if not link.startswith(
                "https://") else link
        elif not link.startswith("https://"):
            raise Invalid("join_link must be an https:// link for a video or home visit",
                          field="join_link")
        check_for_texts("join_link", link, JOIN_LINK_MAX)
    support = cmd.support_person
    if support is None:
        return Visit(cmd.mode, link)
    return Visit(cmd.mode, link, support.name,
                 normalise_mobile(support.phone, regions, "support_person.phone"),
                 support.sms_consent)


# --- placing a session -----------------------------------------------------------------


async def place(conn: Connection, clinic_id: UUID, site_id: UUID, when: Span, *,
                room_id: UUID | None, provider_id: UUID | None, moving: UUID = NO_BOOKING,
                prefer_room: UUID | None = None, prefer_provider: UUID | None = None,
                field: str = "starts_at", needs_room: bool = True) -> Placement:
    """Check a session's times (`rules.span`) against the site's rules and pick a free room
    and provider (one round trip); a remote or home visit (`needs_room` False) takes no
    room."""
    fit = await store.fit(conn, clinic_id, site_id, when, room_id=room_id,
                          provider_id=provider_id, moving=moving, prefer_room=prefer_room,
                          prefer_provider=prefer_provider)
    return rules.place(fit, when, room_id, provider_id, field, needs_room)


async def _conflict(conn: Connection, where: Placement, patient_id: UUID) -> Conflict:
    """The 409 naming which of room, provider or patient is busy, and with which booking."""
    clash = await store.what_conflicts(conn, where, patient_id)
    return rules.busy(clash.resource, clash.id) if clash else rules.busy("booking", None)


async def _insert(conn: Connection, ctx: BookingContext, stype: SessionType,
                  about: Context, starts_at: datetime, room_id: UUID | None,
                  provider_id: UUID | None, now: datetime, series_id: UUID | None,
                  field: str, visit: Visit, audit: tuple[Any, ...] | None = None) -> Booking:
    """Insert one booking, its `SessionBooked` event and the request's audit entry (`audit`,
    if given) in one statement, which also checks the time against the site's rules. With
    the room and the provider given (and no join link, which a clinic visit refuses after
    placement) that statement is the only one: no placement first. If a concurrent booking
    took the room or provider picked for it, pick again; a real conflict becomes a 409
    naming what conflicts."""
    assert ctx.site_id is not None
    needs_room = visit.mode == "clinic"
    when = rules.span(starts_at, stype, about.site_timezone, now, field)
    for attempt in range(3):
        if room_id is not None and provider_id is not None and visit.join_link is None:
            where = Placement(when.starts_at, when.ends_at, when.occupied_until,
                              room_id if needs_room else None, provider_id)
        else:
            where = await place(conn, ctx.clinic_id, ctx.site_id, when, room_id=room_id,
                                provider_id=provider_id, field=field, needs_room=needs_room)
        booking_id = uuid4()  # the event tells of the row as it will be (version 1)
        link = rules.join_link(visit.mode, visit.join_link, about.call_in_phone,
                               about.video_link_template, booking_id)
        booked = SessionBooked(**appointment_fields(booking_id, 1, series_id, ctx.site_id,
                                                    stype.code, stype.is_dosing, where, about,
                                                    visit, link))
        booking, fit = await store.insert_booking(
            conn, booking_id, ctx, stype, about, when, where, series_id, visit, link,
            store.event(booked, ctx.clinic_id, ctx.patient_id), audit)
        if booking is not None:
            return booking
        # what refused it: the site's rules (nothing was written), else a conflict
        rules.place(fit, when, where.room_id, where.provider_id, field, needs_room)
        conflict = await _conflict(conn, where, ctx.patient_id)
        if not rules.pick_again(conflict, room_id, provider_id) or attempt == 2:
            raise conflict
    raise AssertionError("unreachable")


# --- booking ---------------------------------------------------------------------------


async def book_session(conn: Connection, who: Principal, cmd: BookSession,
                       now: datetime | None = None, visit: Visit = CLINIC_VISIT,
                       audit: tuple[Any, ...] | None = None) -> Booking:
    """Book one session and queue `SessionBooked`: reads, then ONE statement writes the
    booking, its event and the audit entry `audit` if given (the API relies on that to run it
    without a transaction; the exclusion constraints decide conflicts either way). A session
    in clinic in a given room with a given provider, outside a transaction, is first tried
    by one statement alone (`store.book_at_once`); if anything refuses it there (nothing is
    written then), it is booked as any other, which says why."""
    now = now or datetime.now(UTC)
    if (visit == CLINIC_VISIT and cmd.room_id is not None and cmd.provider_id is not None
            and cmd.starts_at.tzinfo is not None and not conn.is_in_transaction()):
        booked = await _book_at_once(conn, who.clinic_id, cmd, cmd.room_id, cmd.provider_id,
                                     now, audit)
        if booked is not None:
            return booked
    [booking] = await book_slots(conn, who.clinic_id, cmd.patient_id, cmd.site_id,
                                 cmd.session_type, [cmd.starts_at], cmd.room_id, cmd.provider_id,
                                 now, visit=visit, audit=audit)
    return booking


_SEEN: dict[tuple[UUID, UUID, str], tuple[str, SessionType]] = {}
"""The site's time zone and the session type, per (clinic, site, type code), as this process
last read them in a booking's context: what `_book_at_once` works a session's times out
from (its statement checks they still hold)."""
SEEN_MAX = 10_000


async def _book_at_once(conn: Connection, clinic_id: UUID, cmd: BookSession, room_id: UUID,
                        provider_id: UUID, now: datetime,
                        audit: tuple[Any, ...] | None) -> Booking | None:
    """A session in clinic in a given room with a given provider, booked by one statement
    (`store.book_at_once`) when its site and type were seen before; None, with nothing
    written, when it was not booked so (not seen, or anything refused it)."""
    seen = _SEEN.get((clinic_id, cmd.site_id, cmd.session_type))
    if seen is None:
        return None
    timezone, stype = seen
    try:
        when = rules.span(cmd.starts_at.astimezone(UTC), stype, timezone, now)
    except Invalid:
        return None  # booked the usual way, which says why
    return await store.book_at_once(
        conn, clinic_id, cmd.patient_id, cmd.site_id, timezone, stype, when, room_id,
        provider_id, uuid4(), uuid4(), current_correlation_id(), tracing.context_of(None), audit)


def _seen(clinic_id: UUID, site_id: UUID, about: Context, stype: SessionType) -> None:
    if len(_SEEN) >= SEEN_MAX:
        _SEEN.clear()
    _SEEN[(clinic_id, site_id, stype.code)] = (about.site_timezone, stype)


async def book_series(conn: Connection, who: Principal, cmd: BookSeries,
                      now: datetime | None = None, visit: Visit = CLINIC_VISIT) -> list[Booking]:
    """Book several sessions at once, all or nothing; each its own booking in one series."""
    return await book_slots(conn, who.clinic_id, cmd.patient_id, cmd.site_id, cmd.session_type,
                            cmd.starts_at, cmd.room_id, cmd.provider_id, now, series=True,
                            visit=visit)


async def book_slots(conn: Connection, clinic_id: UUID, patient_id: UUID, site_id: UUID,
                     code: str, starts: list[datetime], room_id: UUID | None,
                     provider_id: UUID | None, now: datetime | None,
                     series: bool = False, visit: Visit = CLINIC_VISIT,
                     audit: tuple[Any, ...] | None = None) -> list[Booking]:
    """Book `starts` for a patient (one booking each, in one series if `series`); the
    caller's transaction makes it all or nothing."""
    now = now or datetime.now(UTC)
    ctx = await store.booking_context(conn, clinic_id, site_id, patient_id, code)
    if ctx is None:
        raise NotFound("unknown patient", field="patient_id")
    if ctx.about is None:
        raise NotFound("unknown site", field="site_id")
    if ctx.stype is None:
        raise Invalid("unknown session type", field="session_type")
    about, stype = ctx.about, ctx.stype
    _seen(clinic_id, site_id, about, stype)
    rules.check_mode(stype, visit.mode, room_id, visit.support_name is not None)
    rules.check_contact(stype.is_dosing and visit.mode != "home", ctx.sms_consent,
                        about.ride_contact_phone)
    series_id = uuid4() if series else None
    booked = []
    for i, start in enumerate(starts):
        field = rules.start_field(i, series)
        try:
            starts_at = to_utc(start, about.site_timezone, field)
            booked.append(await _insert(conn, ctx, stype, about, starts_at, room_id,
                                        provider_id, now, series_id, field, visit, audit))
        except Conflict as exc:
            if series:  # say which session of the series could not be booked
                exc.details.setdefault("conflicts_with", {})["session_index"] = i
            raise
    return booked


# --- the lifecycle (rules.TRANSITIONS) --------------------------------------------------


async def _changed(conn: Connection, clinic_id: UUID, booking_id: UUID, action: str,
                   booking: Booking | None, now: datetime) -> Booking:
    """The booking an action changed; if it changed none, why (one read, only then)."""
    if booking is None:
        raise rules.refusal(action, await store.booking_status(conn, clinic_id, booking_id), now)
    return booking


async def _advance(conn: Connection, clinic_id: UUID, booking_id: UUID, action: str,
                   now: datetime | None = None, reason: str | None = None,
                   actor: str | None = None) -> Booking:
    """Take a booking to the status `action` leads to (one statement)."""
    now = now or datetime.now(UTC)
    step = rules.TRANSITIONS[action]
    assert step.to is not None
    booking = await store.change_status(conn, clinic_id, booking_id, step.allowed, step.to,
                                        started_by=rules.started_by(action, now), reason=reason,
                                        actor=actor)
    return await _changed(conn, clinic_id, booking_id, action, booking, now)


async def reschedule(conn: Connection, who: Principal, booking_id: UUID,
                     cmd: RescheduleSession, now: datetime | None = None) -> Booking:
    """Move a booked session (same id, version + 1) and queue `SessionRescheduled`."""
    now = now or datetime.now(UTC)
    found = await store.booking_to_move(conn, who.clinic_id, booking_id)
    if found is None:
        raise NotFound("unknown booking")
    before, stype = found
    rules.check_allowed("reschedule", before.status)
    rules.check_version(cmd.expected_version, before.version)
    if before.mode != "clinic" and cmd.room_id is not None:
        raise Invalid(f"a {before.mode} visit takes no room", field="room_id")
    timezone = before.about.site_timezone
    when = rules.span(to_utc(cmd.starts_at, timezone), stype, timezone, now)
    where = await place(conn, who.clinic_id, before.site_id, when, room_id=cmd.room_id,
                        provider_id=cmd.provider_id, moving=booking_id,
                        prefer_room=before.room_id, prefer_provider=before.provider_id,
                        needs_room=before.mode == "clinic")
    try:
        moved = await store.move_booking(conn, who.clinic_id, booking_id,
                                         rules.TRANSITIONS["reschedule"].allowed, where)
    except store.Taken:
        raise await _conflict(conn, where, before.patient_id) from None
    b = await _changed(conn, who.clinic_id, booking_id, "reschedule", moved, now)
    await _emit(conn, b, SessionRescheduled(
        **appointment_fields(b.id, b.version, b.series_id, b.site_id, b.session_type,
                             b.is_dosing, _placement(b), b.about, visit_of(b), b.join_link),
        previous_starts_at=before.starts_at, previous_ends_at=before.occupied_until))
    return b


async def cancel(conn: Connection, actor: str, clinic_id: UUID, booking_id: UUID,
                 cmd: CancelSession) -> Booking:
    """Cancel a booked session and queue `SessionCancelled` (services/booking/waitlist.py
    offers the freed slot)."""
    b = await _advance(conn, clinic_id, booking_id, "cancel", reason=cmd.reason, actor=actor)
    await _emit(conn, b, SessionCancelled(**change_fields(b), reason=cmd.reason,
                                          cancelled_by=actor))
    return b


async def check_in(conn: Connection, who: Principal, booking_id: UUID) -> Booking:
    b = await _advance(conn, who.clinic_id, booking_id, "check_in")
    await _emit(conn, b, PatientCheckedIn(**change_fields(b)))
    return b


async def complete(conn: Connection, who: Principal, booking_id: UUID) -> Booking:
    b = await _advance(conn, who.clinic_id, booking_id, "complete")
    await _emit(conn, b, SessionCompleted(**change_fields(b)))
    return b


async def no_show(conn: Connection, who: Principal, booking_id: UUID,
                  now: datetime | None = None) -> Booking:
    """The patient did not come (only once the session started)."""
    b = await _advance(conn, who.clinic_id, booking_id, "no_show", now)
    await _emit(conn, b, PatientNoShow(**change_fields(b)))
    return b


async def update_ride(conn: Connection, clinic_id: UUID, booking_id: UUID,
                      cmd: UpdateRide) -> Booking:
    """Record the ride home (a driver only for a confirmed ride) and queue
    `RideDetailsUpdated`."""
    driver = rules.ride_driver(cmd.ride_status, cmd.driver_name)
    changed = await store.set_ride(conn, clinic_id, booking_id, rules.TRANSITIONS["ride"].allowed,
                                   cmd.ride_status, driver)
    b = await _changed(conn, clinic_id, booking_id, "ride", changed, datetime.now(UTC))
    await _emit(conn, b, RideDetailsUpdated(booking_id=b.id, version=b.version,
                                            ride_status=cmd.ride_status, driver_name=driver))
    return b


async def confirm_support(conn: Connection, clinic_id: UUID, booking_id: UUID) -> Booking:
    """The support person of a booked home session confirmed they will be there (staff
    record it; the attention inbox stops listing it)."""
    b = await store.set_support_confirmed(conn, clinic_id, booking_id)
    if b is None:
        found = await store.booking_status(conn, clinic_id, booking_id)
        if found is None:
            raise NotFound("unknown booking")
        raise Conflict("only a booked home session has a support person to confirm",
                       status=found.status)
    return b
