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

from shared.auth import Principal
from services.booking.commands import (BookSeries, BookSession, CancelSession, RescheduleSession,
                                       UpdateRide)
from services.booking.db import PRODUCER, Q
from services.booking.localtime import local_iso, to_utc
from services.booking.network import get_site, ride_contact_of, session_type
from shared.errors import Conflict, Invalid, NotFound
from shared.events import Envelope, Event
from shared.events.booking import (PatientCheckedIn, PatientNoShow, RideDetailsUpdated,
                                   SessionBooked, SessionCancelled, SessionCompleted,
                                   SessionRescheduled)
from shared.outbox import enqueue

NO_BOOKING = UUID(int=0)


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


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def view(row: asyncpg.Record) -> dict:
    """A booking as the API shows it: UTC and site-local times side by side (ISO 8601
    strings, the same whichever route returns them)."""
    tz = row["site_timezone"]
    return {
        "id": row["id"], "clinic_id": row["clinic_id"], "site_id": row["site_id"],
        "room_id": row["room_id"], "provider_id": row["provider_id"],
        "patient_id": row["patient_id"], "series_id": row["series_id"],
        "session_type": row["session_type"], "is_dosing": row["is_dosing"],
        "status": row["status"], "version": row["version"],
        "starts_at": _iso(row["starts_at"]), "ends_at": _iso(row["ends_at"]),
        "occupied_until": _iso(row["occupied_until"]),
        "starts_at_local": local_iso(row["starts_at"], tz),
        "ends_at_local": local_iso(row["ends_at"], tz),
        "occupied_until_local": local_iso(row["occupied_until"], tz),
        "site_timezone": tz,
        "confirmed_by_patient": row["confirmed_at"] is not None,
        "confirmed_at": _iso(row["confirmed_at"]),
        "ride": {"status": row["ride_status"], "driver_name": row["ride_driver_name"]},
        "reschedule_requested_at": _iso(row["reschedule_requested_at"]),
        "cancel_reason": row["cancel_reason"], "cancelled_by": row["cancelled_by"],
        "created_at": _iso(row["created_at"]), "updated_at": _iso(row["updated_at"]),
    }


# --- placing a session -----------------------------------------------------------------


async def place(conn: asyncpg.Connection, clinic_id: UUID, site_id: UUID, timezone: str,
                stype, starts_at: datetime, *, room_id: UUID | None, provider_id: UUID | None,
                now: datetime, moving: UUID = NO_BOOKING, prefer_room: UUID | None = None,
                prefer_provider: UUID | None = None, field: str = "starts_at") -> Placement:
    """Check a start time against the site's rules and pick a free room and provider (one
    round trip)."""
    if starts_at < now:
        raise Invalid("a session cannot be booked in the past", field=field)
    ends_at = starts_at + timedelta(minutes=stype["duration_minutes"])
    occupied = ends_at + timedelta(minutes=stype["recovery_minutes"])
    tz = ZoneInfo(timezone)
    local_start, local_end = starts_at.astimezone(tz), occupied.astimezone(tz)
    if local_end.date() != local_start.date():
        raise Invalid("the session (with recovery) must end the same day", field=field)
    day = local_start.date()
    fit = await conn.fetchrow(
        Q.placement, site_id, clinic_id, day, local_start.isoweekday(), local_start.time(),
        local_end.time(), starts_at, occupied, room_id, provider_id, moving, prefer_room,
        prefer_provider)
    if fit["closed"]:
        raise Invalid(f"the site is closed on {day}", field=field)
    if not fit["open"]:
        raise Invalid("outside the site's opening hours (recovery included)", field=field)
    if not fit["room_known"]:
        raise NotFound("unknown room at this site", field="room_id")
    if not fit["provider_known"]:
        raise NotFound("unknown provider", field="provider_id")
    if not fit["provider_works"]:
        raise Invalid("the provider does not work at this site then", field="provider_id")
    room_id = room_id or fit["free_room"]
    provider_id = provider_id or fit["free_provider"]
    if room_id is None:
        raise Conflict("no room is free then", conflicts_with={"resource": "room"})
    if provider_id is None:
        raise Conflict("no provider is free then", conflicts_with={"resource": "provider"})
    return Placement(starts_at, ends_at, occupied, room_id, provider_id)


async def _conflict(conn: asyncpg.Connection, where: Placement, patient_id: UUID) -> Conflict:
    """The 409 naming which of room, provider or patient is busy, and with which booking."""
    row = await conn.fetchrow(Q.what_conflicts, where.starts_at, where.occupied_until,
                              where.room_id, where.provider_id, patient_id)
    resource, other = (row["resource"], row["id"]) if row else ("booking", None)
    return Conflict(f"the {resource} is already booked then",
                    conflicts_with={"resource": resource, "booking_id": other})


def _check_contact(ctx, stype) -> None:
    if stype["is_dosing"] and not ctx["sms_consent"] and not ctx["ride_contact_phone"]:
        raise Invalid("a dosing session needs a way to arrange the ride home: SMS consent or a "
                      "ride contact", field="patient_id")


async def _insert(conn, ctx, starts_at, room_id, provider_id, now, series_id=None,
                  field="starts_at") -> dict:
    """Insert one booking and its `SessionBooked` event in one statement. If a concurrent
    booking took the room or provider picked for it, pick again; a real conflict becomes a
    409 naming what conflicts."""
    for attempt in range(3):
        where = await place(conn, ctx["clinic_id"], ctx["site_id"], ctx["site_timezone"], ctx,
                            starts_at, room_id=room_id, provider_id=provider_id, now=now,
                            field=field)
        # the event is made from the row as it will be (a new booking's version is 1)
        row = {**dict(ctx), "id": uuid4(), "version": 1, "series_id": series_id,
               "room_id": where.room_id, "provider_id": where.provider_id,
               "session_type": ctx["code"], "starts_at": where.starts_at,
               "ends_at": where.ends_at, "occupied_until": where.occupied_until}
        event = Envelope.new(SessionBooked(**appointment_fields(row)), producer=PRODUCER,
                             clinic_id=ctx["clinic_id"], patient_id=ctx["patient_id"])
        booking = await conn.fetchrow(
            Q.insert_booking_with_event, row["id"], ctx["clinic_id"], ctx["site_id"],
            where.room_id, where.provider_id, ctx["patient_id"], series_id, ctx["code"],
            ctx["is_dosing"], where.starts_at, where.ends_at, where.occupied_until,
            event.topic, event.key, event.to_bytes(), event.event_id, event.event_type)
        if booking is not None:
            return {**row, **dict(booking)}
        conflict = await _conflict(conn, where, ctx["patient_id"])
        resource = conflict.details["conflicts_with"]["resource"]
        picked = (resource == "room" and room_id is None) or \
                 (resource == "provider" and provider_id is None)
        if not picked or attempt == 2:
            raise conflict
    raise AssertionError("unreachable")


# --- events ----------------------------------------------------------------------------


def appointment_fields(row: asyncpg.Record) -> dict:
    return dict(
        booking_id=row["id"], version=row["version"], series_id=row["series_id"],
        clinic_name=row["clinic_name"], clinic_sms_name=row["clinic_sms_name"],
        clinic_phone=row["clinic_phone"], site_id=row["site_id"], site_name=row["site_name"],
        site_sms_name=row["site_sms_name"], site_address=row["site_address"],
        site_phone=row["site_phone"],
        site_timezone=row["site_timezone"], site_region=row["site_region"], room_id=row["room_id"],
        provider_id=row["provider_id"],
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
                       now: datetime | None = None) -> dict:
    """Book one session and queue `SessionBooked`: reads, then ONE statement writes the
    booking and its event (the API relies on that to run it without a transaction; the
    exclusion constraints decide conflicts either way)."""
    [row] = await book_slots(conn, who.clinic_id, cmd.patient_id, cmd.site_id, cmd.session_type,
                             [cmd.starts_at], cmd.room_id, cmd.provider_id, now)
    return row


async def book_series(conn: asyncpg.Connection, who: Principal, cmd: BookSeries,
                      now: datetime | None = None) -> list[dict]:
    """Book several sessions at once, all or nothing; each its own booking in one series."""
    return await book_slots(conn, who.clinic_id, cmd.patient_id, cmd.site_id, cmd.session_type,
                            cmd.starts_at, cmd.room_id, cmd.provider_id, now, series=True)


async def book_slots(conn, clinic_id, patient_id, site_id, code, starts, room_id, provider_id, now,
                     series: bool = False) -> list[dict]:
    """Book `starts` for a patient (one booking each, in one series if `series`); the
    caller's transaction makes it all or nothing."""
    now = now or datetime.now(UTC)
    ctx = await conn.fetchrow(Q.booking_context, clinic_id, site_id, patient_id, code)
    if ctx is None:
        raise NotFound("unknown patient", field="patient_id")
    if ctx["site_id"] is None:
        raise NotFound("unknown site", field="site_id")
    if ctx["code"] is None:
        raise Invalid(f"unknown session type {code!r}", field="session_type")
    _check_contact(ctx, ctx)
    series_id = uuid4() if series else None
    rows = []
    for i, start in enumerate(starts):
        field = f"starts_at.{i}" if series else "starts_at"
        try:
            starts_at = to_utc(start, ctx["site_timezone"], field)
            booking = await _insert(conn, ctx, starts_at, room_id, provider_id, now, series_id, field)
        except Conflict as exc:
            if series:  # say which session of the series could not be booked
                exc.details.setdefault("conflicts_with", {})["session_index"] = i
            raise
        rows.append(booking)
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
    where = await place(conn, who.clinic_id, site["id"], site["timezone"], stype, starts_at,
                        room_id=cmd.room_id, provider_id=cmd.provider_id, now=now,
                        moving=booking_id, prefer_room=before["room_id"],
                        prefer_provider=before["provider_id"])
    try:
        async with conn.transaction():  # a savepoint, so the conflict can be looked up
            await conn.execute(Q.move_booking, booking_id, where.starts_at, where.ends_at,
                               where.occupied_until, where.room_id, where.provider_id)
    except asyncpg.ExclusionViolationError:
        raise await _conflict(conn, where, before["patient_id"]) from None
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


async def _change_status(conn: asyncpg.Connection, clinic_id: UUID, booking_id: UUID,
                         allowed: tuple[str, ...], action: str, status: str, event) -> asyncpg.Record:
    """Move a booking from one of `allowed` to `status` and queue `event`."""
    await _lock(conn, clinic_id, booking_id, allowed, action)
    await conn.execute(Q.set_status, booking_id, status, None, None)
    row = await load(conn, clinic_id, booking_id)
    await emit(conn, row, event(**change_fields(row)))
    return row


async def check_in(conn: asyncpg.Connection, who: Principal, booking_id: UUID) -> asyncpg.Record:
    return await _change_status(conn, who.clinic_id, booking_id, ("booked",), "checked in",
                                "arrived", PatientCheckedIn)


async def complete(conn: asyncpg.Connection, who: Principal, booking_id: UUID) -> asyncpg.Record:
    return await _change_status(conn, who.clinic_id, booking_id, ("arrived",),
                                "completed (check the patient in first)", "fulfilled", SessionCompleted)


async def no_show(conn: asyncpg.Connection, who: Principal, booking_id: UUID,
                  now: datetime | None = None) -> asyncpg.Record:
    row = await load(conn, who.clinic_id, booking_id)
    if row["status"] == "booked" and row["starts_at"] > (now or datetime.now(UTC)):
        raise Conflict("the session has not started yet")
    return await _change_status(conn, who.clinic_id, booking_id, ("booked",),
                                "marked as a no-show", "noshow", PatientNoShow)


async def update_ride(conn: asyncpg.Connection, clinic_id: UUID, booking_id: UUID,
                      cmd: UpdateRide) -> asyncpg.Record:
    await _lock(conn, clinic_id, booking_id, ("booked", "arrived"), "given a ride")
    driver = cmd.driver_name if cmd.ride_status == "confirmed" else None
    await conn.execute(Q.set_ride, booking_id, cmd.ride_status, driver)
    row = await load(conn, clinic_id, booking_id)
    await emit(conn, row, RideDetailsUpdated(booking_id=row["id"], version=row["version"],
                                             ride_status=cmd.ride_status, driver_name=driver))
    return row
