"""Booking, moving, cancelling and following sessions through their day.

Plain functions on one connection, inside the caller's transaction; each queues its events
in the outbox there. Double-booking is prevented by the exclusion constraints on `bookings`
(room, provider and patient, recovery included), so it holds under any concurrency; the
checks here only make the errors clear.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import asyncpg

from services.booking.auth import Principal
from services.booking.commands import (BookSeries, BookSession, CancelSession, RescheduleSession,
                                       UpdateRide)
from services.booking.db import PRODUCER, Q
from services.booking.localtime import local_iso, to_utc
from services.booking.network import get_patient, get_site, ride_contact_of, session_type
from shared.errors import Conflict, Invalid, NotFound
from shared.events import Envelope, Event
from shared.events.booking import (PatientCheckedIn, PatientNoShow, RideDetailsUpdated,
                                   SessionBooked, SessionCancelled, SessionCompleted,
                                   SessionRescheduled)
from shared.outbox import enqueue

NO_BOOKING = UUID(int=0)
RESOURCE_OF_CONSTRAINT = {"bookings_room_free": "room", "bookings_provider_free": "provider",
                          "bookings_patient_free": "patient"}


@dataclass(frozen=True)
class Placement:
    """Where and when a session would take place, checked against the site's rules."""

    starts_at: datetime
    ends_at: datetime
    occupied_until: datetime
    room_id: UUID
    provider_id: UUID


# --- reading ---------------------------------------------------------------------------


async def load(conn: asyncpg.Connection, clinic_id: UUID, booking_id: UUID) -> asyncpg.Record:
    row = await conn.fetchrow(Q.booking, booking_id, clinic_id)
    if row is None:
        raise NotFound("unknown booking")
    return row


def view(row: asyncpg.Record) -> dict:
    """A booking as the API shows it: UTC and site-local times side by side."""
    tz = row["site_timezone"]
    return {
        "id": row["id"], "clinic_id": row["clinic_id"], "site_id": row["site_id"],
        "room_id": row["room_id"], "provider_id": row["provider_id"],
        "patient_id": row["patient_id"], "series_id": row["series_id"],
        "session_type": row["session_type"], "is_dosing": row["is_dosing"],
        "status": row["status"], "version": row["version"],
        "starts_at": row["starts_at"], "ends_at": row["ends_at"],
        "occupied_until": row["occupied_until"],
        "starts_at_local": local_iso(row["starts_at"], tz),
        "ends_at_local": local_iso(row["ends_at"], tz),
        "occupied_until_local": local_iso(row["occupied_until"], tz),
        "site_timezone": tz,
        "confirmed_by_patient": row["confirmed_at"] is not None,
        "confirmed_at": row["confirmed_at"],
        "ride": {"status": row["ride_status"], "driver_name": row["ride_driver_name"]},
        "reschedule_requested_at": row["reschedule_requested_at"],
        "cancel_reason": row["cancel_reason"], "cancelled_by": row["cancelled_by"],
        "created_at": row["created_at"], "updated_at": row["updated_at"],
    }


# --- placing a session -----------------------------------------------------------------


async def place(conn: asyncpg.Connection, clinic_id: UUID, site: asyncpg.Record,
                stype: asyncpg.Record, starts_at: datetime, *, room_id: UUID | None,
                provider_id: UUID | None, now: datetime, moving: UUID = NO_BOOKING,
                prefer_room: UUID | None = None, prefer_provider: UUID | None = None,
                field: str = "starts_at") -> Placement:
    """Check a start time against the site's rules and pick a free room and provider."""
    if starts_at < now:
        raise Invalid("a session cannot be booked in the past", field=field)
    ends_at = starts_at + timedelta(minutes=stype["duration_minutes"])
    occupied = ends_at + timedelta(minutes=stype["recovery_minutes"])
    tz = ZoneInfo(site["timezone"])
    local_start, local_end = starts_at.astimezone(tz), occupied.astimezone(tz)
    if local_end.date() != local_start.date():
        raise Invalid("the session (with recovery) must end the same day", field=field)
    day, weekday = local_start.date(), local_start.isoweekday()
    if await conn.fetchval(Q.closed_on, site["id"], day):
        raise Invalid(f"the site is closed on {day}", field=field)
    if not await conn.fetchval(Q.site_open, site["id"], weekday, local_start.time(), local_end.time()):
        raise Invalid("outside the site's opening hours (recovery included)", field=field)

    if room_id is not None:
        room = await conn.fetchrow(Q.get_room, room_id, clinic_id)
        if room is None or room["site_id"] != site["id"]:
            raise NotFound("unknown room at this site", field="room_id")
    else:
        free = [r["id"] for r in await conn.fetch(Q.free_rooms, site["id"], starts_at, occupied, moving)]
        if not free:
            raise Conflict("no room is free then", conflicts_with={"resource": "room"})
        room_id = prefer_room if prefer_room in free else free[0]

    if provider_id is not None:
        if await conn.fetchrow(Q.get_provider, provider_id, clinic_id) is None:
            raise NotFound("unknown provider", field="provider_id")
        if not await conn.fetchval(Q.provider_works, provider_id, site["id"], weekday,
                                   local_start.time(), local_end.time()):
            raise Invalid("the provider does not work at this site then", field="provider_id")
    else:
        free = [r["id"] for r in await conn.fetch(
            Q.free_providers, site["id"], starts_at, occupied, weekday, local_start.time(),
            local_end.time(), moving)]
        if not free:
            raise Conflict("no provider is free then", conflicts_with={"resource": "provider"})
        provider_id = prefer_provider if prefer_provider in free else free[0]
    return Placement(starts_at, ends_at, occupied, room_id, provider_id)


async def _conflict(conn: asyncpg.Connection, exc: asyncpg.ExclusionViolationError,
                    where: Placement, patient_id: UUID) -> Conflict:
    resource = RESOURCE_OF_CONSTRAINT.get(exc.constraint_name or "", "booking")
    value = {"room": where.room_id, "provider": where.provider_id}.get(resource, patient_id)
    other = await conn.fetchval(Q.conflicting_booking, resource, where.starts_at,
                                where.occupied_until, value)
    return Conflict(f"the {resource} is already booked then",
                    conflicts_with={"resource": resource, "booking_id": other})


def _check_contact(patient: asyncpg.Record, stype: asyncpg.Record) -> None:
    if stype["is_dosing"] and not patient["sms_consent"] and not patient["ride_contact_phone"]:
        raise Invalid("a dosing session needs a way to arrange the ride home: SMS consent or a "
                      "ride contact", field="patient_id")


async def _insert(conn, clinic_id, site, stype, patient, starts_at, room_id, provider_id, now,
                  series_id=None, field="starts_at") -> UUID:
    """Insert one booking, retrying the choice of room/provider if a concurrent booking
    took the one picked; a real conflict becomes a 409 naming what conflicts."""
    for attempt in range(3):
        where = await place(conn, clinic_id, site, stype, starts_at, room_id=room_id,
                            provider_id=provider_id, now=now, field=field)
        try:
            async with conn.transaction():  # savepoint: a conflict leaves the rest intact
                return await conn.fetchval(
                    Q.insert_booking, uuid4(), clinic_id, site["id"], where.room_id,
                    where.provider_id, patient["id"], series_id, stype["code"], stype["is_dosing"],
                    where.starts_at, where.ends_at, where.occupied_until)
        except asyncpg.ExclusionViolationError as exc:
            resource = RESOURCE_OF_CONSTRAINT.get(exc.constraint_name or "")
            picked = (resource == "room" and room_id is None) or \
                     (resource == "provider" and provider_id is None)
            if not picked or attempt == 2:
                raise await _conflict(conn, exc, where, patient["id"]) from None
    raise AssertionError("unreachable")


# --- events ----------------------------------------------------------------------------


def appointment_fields(row: asyncpg.Record) -> dict:
    return dict(
        booking_id=row["id"], version=row["version"], series_id=row["series_id"],
        clinic_name=row["clinic_name"], clinic_phone=row["clinic_phone"], site_id=row["site_id"],
        site_name=row["site_name"], site_address=row["site_address"], site_phone=row["site_phone"],
        site_timezone=row["site_timezone"], room_id=row["room_id"], provider_id=row["provider_id"],
        session_type=row["session_type"], is_dosing=row["is_dosing"],
        fasting_rule=row["fasting_rule"], starts_at=row["starts_at"], ends_at=row["occupied_until"],
        patient_language=row["patient_language"], ride_contact=ride_contact_of(row))


def change_fields(row: asyncpg.Record) -> dict:
    return dict(booking_id=row["id"], version=row["version"], session_type=row["session_type"],
                is_dosing=row["is_dosing"], site_id=row["site_id"], starts_at=row["starts_at"])


async def emit(conn: asyncpg.Connection, row: asyncpg.Record, *payloads: Event) -> None:
    await enqueue(conn, [Envelope.new(p, producer=PRODUCER, clinic_id=row["clinic_id"],
                                      patient_id=row["patient_id"]) for p in payloads])


# --- commands --------------------------------------------------------------------------


async def book_session(conn: asyncpg.Connection, who: Principal, cmd: BookSession,
                       now: datetime | None = None) -> asyncpg.Record:
    """Book one session and queue `SessionBooked`."""
    [row] = await book_slots(conn, who.clinic_id, cmd.patient_id, cmd.site_id, cmd.session_type,
                             [cmd.starts_at], cmd.room_id, cmd.provider_id, now)
    return row


async def book_series(conn: asyncpg.Connection, who: Principal, cmd: BookSeries,
                      now: datetime | None = None) -> list[asyncpg.Record]:
    """Book several sessions at once, all or nothing; each its own booking in one series."""
    return await book_slots(conn, who.clinic_id, cmd.patient_id, cmd.site_id, cmd.session_type,
                            cmd.starts_at, cmd.room_id, cmd.provider_id, now, series=True)


async def book_slots(conn, clinic_id, patient_id, site_id, code, starts, room_id, provider_id, now,
                     series: bool = False) -> list[asyncpg.Record]:
    """Book `starts` for a patient (one booking each, in one series if `series`); the
    caller's transaction makes it all or nothing."""
    now = now or datetime.now(UTC)
    patient = await get_patient(conn, clinic_id, patient_id, for_update=True)
    site = await get_site(conn, clinic_id, site_id)
    stype = await session_type(conn, clinic_id, code)
    _check_contact(patient, stype)
    series_id = uuid4() if series else None
    rows = []
    for i, start in enumerate(starts):
        field = f"starts_at.{i}" if series else "starts_at"
        try:
            starts_at = to_utc(start, site["timezone"], field)
            booking_id = await _insert(conn, clinic_id, site, stype, patient, starts_at, room_id,
                                       provider_id, now, series_id, field)
        except Conflict as exc:
            if series:  # say which session of the series could not be booked
                exc.details.setdefault("conflicts_with", {})["session_index"] = i
            raise
        row = await load(conn, clinic_id, booking_id)
        await emit(conn, row, SessionBooked(**appointment_fields(row)))
        rows.append(row)
    return rows


async def _lock(conn, clinic_id: UUID, booking_id: UUID, allowed: tuple[str, ...], action: str):
    locked = await conn.fetchrow(Q.lock_booking, booking_id, clinic_id)
    if locked is None:
        raise NotFound("unknown booking")
    if locked["status"] not in allowed:
        raise Conflict(f"a {locked['status']} booking cannot be {action}", status=locked["status"])
    return locked


async def reschedule(conn: asyncpg.Connection, who: Principal, booking_id: UUID,
                     cmd: RescheduleSession, now: datetime | None = None) -> asyncpg.Record:
    """Move a booked session (same id, version + 1) and queue `SessionRescheduled`."""
    now = now or datetime.now(UTC)
    locked = await _lock(conn, who.clinic_id, booking_id, ("booked",), "rescheduled")
    if cmd.expected_version is not None and cmd.expected_version != locked["version"]:
        raise Conflict("the booking changed meanwhile", version=locked["version"])
    before = await load(conn, who.clinic_id, booking_id)
    site = await get_site(conn, who.clinic_id, before["site_id"])
    stype = await session_type(conn, who.clinic_id, before["session_type"])
    starts_at = to_utc(cmd.starts_at, site["timezone"])
    where = await place(conn, who.clinic_id, site, stype, starts_at, room_id=cmd.room_id,
                        provider_id=cmd.provider_id, now=now, moving=booking_id,
                        prefer_room=before["room_id"], prefer_provider=before["provider_id"])
    try:
        async with conn.transaction():
            await conn.execute(Q.move_booking, booking_id, where.starts_at, where.ends_at,
                               where.occupied_until, where.room_id, where.provider_id)
    except asyncpg.ExclusionViolationError as exc:
        raise await _conflict(conn, exc, where, before["patient_id"]) from None
    row = await load(conn, who.clinic_id, booking_id)
    await emit(conn, row, SessionRescheduled(
        **appointment_fields(row), previous_starts_at=before["starts_at"],
        previous_ends_at=before["occupied_until"]))
    return row


async def cancel(conn: asyncpg.Connection, who: Principal | str, clinic_id: UUID, booking_id: UUID,
                 cmd: CancelSession) -> asyncpg.Record:
    """Cancel a booked session; its slot is offered to the waitlist."""
    from services.booking.waitlist import offer_freed_slot

    await _lock(conn, clinic_id, booking_id, ("booked",), "cancelled")
    actor = who.actor if isinstance(who, Principal) else who
    await conn.execute(Q.set_status, booking_id, "cancelled", cmd.reason, actor)
    row = await load(conn, clinic_id, booking_id)
    await emit(conn, row, SessionCancelled(**change_fields(row), reason=cmd.reason, cancelled_by=actor))
    await offer_freed_slot(conn, row)
    return row


async def check_in(conn: asyncpg.Connection, who: Principal, booking_id: UUID) -> asyncpg.Record:
    await _lock(conn, who.clinic_id, booking_id, ("booked",), "checked in")
    await conn.execute(Q.set_status, booking_id, "arrived", None, None)
    row = await load(conn, who.clinic_id, booking_id)
    await emit(conn, row, PatientCheckedIn(**change_fields(row)))
    return row


async def complete(conn: asyncpg.Connection, who: Principal, booking_id: UUID) -> asyncpg.Record:
    await _lock(conn, who.clinic_id, booking_id, ("arrived",), "completed (check the patient in first)")
    await conn.execute(Q.set_status, booking_id, "fulfilled", None, None)
    row = await load(conn, who.clinic_id, booking_id)
    await emit(conn, row, SessionCompleted(**change_fields(row)))
    return row


async def no_show(conn: asyncpg.Connection, who: Principal, booking_id: UUID,
                  now: datetime | None = None) -> asyncpg.Record:
    await _lock(conn, who.clinic_id, booking_id, ("booked",), "marked as a no-show")
    row = await load(conn, who.clinic_id, booking_id)
    if row["starts_at"] > (now or datetime.now(UTC)):
        raise Conflict("the session has not started yet")
    await conn.execute(Q.set_status, booking_id, "noshow", None, None)
    row = await load(conn, who.clinic_id, booking_id)
    await emit(conn, row, PatientNoShow(**change_fields(row)))
    return row


async def update_ride(conn: asyncpg.Connection, clinic_id: UUID, booking_id: UUID,
                      cmd: UpdateRide) -> asyncpg.Record:
    await _lock(conn, clinic_id, booking_id, ("booked", "arrived"), "given a ride")
    driver = cmd.driver_name if cmd.ride_status == "confirmed" else None
    await conn.execute(Q.set_ride, booking_id, cmd.ride_status, driver)
    row = await load(conn, clinic_id, booking_id)
    await emit(conn, row, RideDetailsUpdated(booking_id=row["id"], version=row["version"],
                                             ride_status=cmd.ride_status, driver_name=driver))
    return row
