"""The booking service's store: the only module that holds SQL (its named queries, in
queries.sql) and the only one that sees asyncpg records. Each function runs one statement on
the connection (or pool) it is given, in the caller's transaction, and answers with the
frozen dataclasses of services/booking/model.py, scalars or, for the staff screens, the JSON
text PostgreSQL built.

Events leave through the outbox (`emit`), in the same transaction as the change they tell of.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeAlias
from uuid import UUID

import asyncpg

from services.booking.model import (
    ApiKey,
    Booking,
    BookingContext,
    Busy,
    Clash,
    Clinic,
    Closure,
    Context,
    Credentials,
    EndedSession,
    Failures,
    Fit,
    Found,
    NewStaff,
    Offer,
    OnlineRequest,
    OpeningHours,
    OpenSession,
    Patient,
    PatientMatch,
    Placement,
    Provider,
    Recent,
    Room,
    SessionType,
    Shift,
    SigningKey,
    Site,
    SiteRoom,
    Span,
    StaffMember,
    StoredResponse,
    Visit,
    Waiting,
    WaitlistEntry,
    field_names,
)
from shared.db import Connection, Queries
from shared.events import Envelope, Event
from shared.events.booking import SessionBooked
from shared.outbox import enqueue, insert_events_sql, insert_row_sql, row
from shared.rows import every as _all
from shared.rows import made as _made
from shared.rows import one as _one
from shared.rows import row as _row

PRODUCER = "booking"
Q = Queries(Path(__file__).with_name("queries.sql"), fragments={
    # insert_booking_with_event's outbox row: SessionBooked, made in Python, as $23 on
    "session_booked_outbox_row": insert_row_sql(23, source="booked"),
    # book_at_once's SessionBooked, built in SQL from the booking `b` and its context `t`
    # (what bookings.appointment_fields says of a clinic visit)
    "session_booked_events": insert_events_sql(
        SessionBooked, source="booked b, t", producer=PRODUCER, event_id="$9::uuid",
        clinic_id="b.clinic_id", patient_id="b.patient_id", correlation_id="$10::uuid",
        trace_context="$11::text", payload={
            "booking_id": "b.id", "version": "b.version", "series_id": "b.series_id",
            "clinic_name": "t.clinic_name", "clinic_sms_name": "t.clinic_sms_name",
            "clinic_phone": "t.clinic_phone", "site_id": "b.site_id",
            "site_name": "t.site_name", "site_sms_name": "t.site_sms_name",
            "site_address": "t.site_address", "site_phone": "t.site_phone",
            "site_timezone": "t.site_timezone", "site_region": "t.site_region",
            "room_id": "b.room_id", "provider_id": "b.provider_id",
            "session_type": "b.session_type", "is_dosing": "b.is_dosing",
            "fasting_rule": "t.fasting_rule", "starts_at": "b.starts_at",
            "ends_at": "b.occupied_until", "patient_language": "t.patient_language",
            # model.ride_contact: only a contact who consented, with a name and a number
            "ride_contact": "CASE WHEN t.ride_contact_consent AND t.ride_contact_name <> ''"
                            " AND t.ride_contact_phone <> '' THEN json_build_object("
                            "'name', t.ride_contact_name, 'phone_e164', t.ride_contact_phone)"
                            " END",
            "mode": "b.mode", "join_link": "b.join_link",
            "patient_timezone": "t.patient_timezone", "support_person": "NULL::json",
            "prep_items": "t.prep_text"})})
NO_AUDIT = (None,) * 13

Db: TypeAlias = Connection | asyncpg.Pool
After = tuple[datetime, UUID]  # a page's cursor: (created_at or starts_at, id) of the last row


# --- events -------------------------------------------------------------------------------


def event(payload: Event, clinic_id: UUID, patient_id: UUID | None,
          cause: Envelope[Any] | None = None) -> Envelope[Event]:
    """An event of the booking service."""
    return Envelope.new(payload, producer=PRODUCER, clinic_id=clinic_id, patient_id=patient_id,
                        cause=cause)


async def emit(conn: Connection, envelopes: Iterable[Envelope[Any]]) -> None:
    """Hand events to the outbox, in the caller's transaction."""
    await enqueue(conn, envelopes)


# --- the network --------------------------------------------------------------------------


async def insert_clinic(conn: Db, clinic_id: UUID, name: str, phone: str,
                        sms_name: str | None, slug: str) -> Clinic:
    return await _made(conn, Clinic, Q.insert_clinic, clinic_id, name, phone, sms_name, slug)


async def get_clinic(db: Db, clinic_id: UUID) -> Clinic | None:
    return await _one(db, Clinic, Q.get_clinic, clinic_id)


async def slug_taken(db: Db, slug: str) -> bool:
    taken: bool = await db.fetchval(Q.slug_taken, slug)
    return taken


async def insert_api_key(conn: Db, key_id: UUID, clinic_id: UUID, key_hash: str, role: str,
                         label: str) -> ApiKey:
    return await _made(conn, ApiKey, Q.insert_api_key, key_id, clinic_id, key_hash, role, label)


async def revoke_api_key(conn: Db, clinic_id: UUID, key_id: UUID) -> bool:
    """Whether the key was the network's and not revoked yet (it is now)."""
    return await conn.fetchval(Q.revoke_api_key, key_id, clinic_id) is not None


async def insert_site(conn: Db, site_id: UUID, clinic_id: UUID, name: str, address: str,
                      phone: str, timezone: str, language: str, region: str | None,
                      sms_name: str | None) -> Site:
    return await _made(conn, Site, Q.insert_site, site_id, clinic_id, name, address, phone,
                       timezone, language, region, sms_name)


async def insert_site_hours(conn: Db, site_id: UUID, hours: Sequence[OpeningHours]) -> None:
    await conn.execute(Q.insert_site_hours, site_id, [h.weekday for h in hours],
                       [h.opens for h in hours], [h.closes for h in hours])


async def get_site(db: Db, clinic_id: UUID, site_id: UUID) -> Site | None:
    return await _one(db, Site, Q.get_site, site_id, clinic_id)


async def list_sites(db: Db, clinic_id: UUID, after: After, limit: int) -> list[Site]:
    return await _all(db, Site, Q.list_sites, clinic_id, *after, limit)


async def site_hours(db: Db, site_id: UUID) -> list[OpeningHours]:
    return await _all(db, OpeningHours, Q.site_hours, site_id)


async def insert_closure(conn: Db, closure_id: UUID, site_id: UUID, first_day: date,
                         last_day: date, reason: str | None) -> Closure:
    return await _made(conn, Closure, Q.insert_closure, closure_id, site_id, first_day,
                       last_day, reason)


async def closures_between(db: Db, site_id: UUID, first: date,
                           last: date) -> list[tuple[date, date]]:
    """The site's closures (first and last day) overlapping `first`..`last`."""
    return [(r["first_day"], r["last_day"])
            for r in await db.fetch(Q.closures_between, site_id, first, last)]


async def insert_room(conn: Db, room_id: UUID, clinic_id: UUID, site_id: UUID, name: str) -> Room:
    return await _made(conn, Room, Q.insert_room, room_id, clinic_id, site_id, name)


async def rooms_of_site(db: Db, site_id: UUID) -> list[SiteRoom]:
    return await _all(db, SiteRoom, Q.rooms_of_site, site_id)


async def insert_provider(conn: Db, provider_id: UUID, clinic_id: UUID, name: str,
                          consultations: bool) -> Provider:
    return await _made(conn, Provider, Q.insert_provider, provider_id, clinic_id, name,
                       consultations)


async def set_provider_consultations(conn: Db, clinic_id: UUID, provider_id: UUID,
                                     consultations: bool) -> Provider | None:
    """Whether the network's provider takes online consultations; None: no such provider."""
    return await _one(conn, Provider, Q.set_provider_consultations, provider_id, clinic_id,
                      consultations)


async def insert_provider_hours(conn: Db, provider_id: UUID, site_ids: list[UUID],
                                hours: Sequence[OpeningHours]) -> None:
    """A provider's working hours, `site_ids[i]` for `hours[i]`."""
    await conn.execute(Q.insert_provider_hours, provider_id, site_ids, [h.weekday for h in hours],
                       [h.opens for h in hours], [h.closes for h in hours])


async def list_providers(db: Db, clinic_id: UUID, after: After, limit: int) -> list[Provider]:
    return await _all(db, Provider, Q.list_providers, clinic_id, *after, limit)


async def provider_hours_at_site(db: Db, site_id: UUID) -> list[Shift]:
    return await _all(db, Shift, Q.provider_hours_at_site, site_id)


async def sites_in_clinic(db: Db, clinic_id: UUID, site_ids: list[UUID]) -> int:
    """How many of `site_ids` are the network's sites."""
    value: int = await db.fetchval(Q.sites_in_clinic, clinic_id, site_ids)
    return value


async def session_type(db: Db, clinic_id: UUID, code: str) -> SessionType | None:
    return await _one(db, SessionType, Q.session_type, clinic_id, code)


async def session_types(db: Db, clinic_id: UUID) -> list[SessionType]:
    return await _all(db, SessionType, Q.session_types, clinic_id)


async def override_session_type(conn: Db, clinic_id: UUID, code: str, duration: int | None,
                                recovery: int | None, fasting_rule: str | None) -> None:
    await conn.execute(Q.upsert_session_type_override, clinic_id, code, duration, recovery,
                       fasting_rule)


async def set_prep_items(conn: Db, clinic_id: UUID, code: str, items_json: str) -> None:
    await conn.execute(Q.set_prep_items, clinic_id, code, items_json)


async def set_remote_ways(conn: Db, clinic_id: UUID, call_in_phone: str | None,
                          video_link_template: str | None) -> dict[str, Any]:
    r = await conn.fetchrow(Q.set_remote_ways, clinic_id, call_in_phone, video_link_template)
    assert r is not None  # UPDATE ... RETURNING of the caller's own clinic
    return dict(r)


# --- patients -----------------------------------------------------------------------------


async def insert_patient(conn: Db, *values: Any) -> Patient:
    """A new patient, from the columns of insert_patient ($1 id ... $13 ride contact
    consent time, $14 time zone)."""
    return await _made(conn, Patient, Q.insert_patient, *values)


async def get_patient(db: Db, clinic_id: UUID, patient_id: UUID) -> Patient | None:
    return await _one(db, Patient, Q.get_patient, patient_id, clinic_id)


async def list_patients(db: Db, clinic_id: UUID, after: After, limit: int) -> list[Patient]:
    return await _all(db, Patient, Q.list_patients, clinic_id, *after, limit)


async def set_patient_timezone(conn: Db, clinic_id: UUID, patient_id: UUID,
                               timezone: str | None) -> Patient | None:
    return await _one(conn, Patient, Q.set_patient_timezone, patient_id, clinic_id, timezone)


async def set_sms_consent(conn: Db, clinic_id: UUID, patient_id: UUID, consent: bool,
                          source: str) -> Patient | None:
    return await _one(conn, Patient, Q.set_sms_consent, patient_id, clinic_id, consent, source)


async def restore_sms_consent(conn: Db, clinic_id: UUID, patient_id: UUID, source: str,
                              taken_by: str) -> Patient | None:
    """Consent back (from `source`) if an opt-out by text (`taken_by`) took it; else None."""
    return await _one(conn, Patient, Q.restore_sms_consent, patient_id, clinic_id, source,
                      taken_by)


async def set_ride_contact_consent(conn: Db, clinic_id: UUID, patient_id: UUID, phone: str,
                                   consent: bool, source: str, taken_by: str) -> Patient | None:
    """The ride contact's consent follows their number's STOP or START (see the query);
    None when nothing changed."""
    return await _one(conn, Patient, Q.set_ride_contact_consent, patient_id, clinic_id, phone,
                      consent, source, taken_by)


# --- bookings -----------------------------------------------------------------------------

_BOOKING_OWN = field_names(Booking)[:-1]  # the bookings row; `about` comes from the joins


def _booking(record: asyncpg.Record) -> Booking:
    return Booking(**{name: record[name] for name in _BOOKING_OWN}, about=_row(Context, record))


async def _one_booking(db: Db, sql: str, *args: Any) -> Booking | None:
    record = await db.fetchrow(sql, *args)
    return None if record is None else _booking(record)


async def booking(db: Db, clinic_id: UUID, booking_id: UUID) -> Booking | None:
    return await _one_booking(db, Q.booking, booking_id, clinic_id)


async def list_bookings(db: Db, clinic_id: UUID, *, patient_id: UUID | None = None,
                        site_id: UUID | None = None, starts_from: datetime | None = None,
                        starts_before: datetime | None = None, status: str | None = None,
                        after: After, limit: int) -> list[Booking]:
    """A page of the network's bookings by start time, each in full (one query)."""
    return [_booking(r) for r in await db.fetch(
        Q.list_bookings, clinic_id, patient_id, site_id, starts_from, starts_before, status,
        *after, limit)]


async def bookings_needing_staff(db: Db, clinic_id: UUID, limit: int) -> list[Booking]:
    return [_booking(r) for r in await db.fetch(Q.bookings_needing_staff, clinic_id, limit)]


async def booking_status(db: Db, clinic_id: UUID, booking_id: UUID) -> Found | None:
    return await _one(db, Found, Q.booking_status, booking_id, clinic_id)


async def change_status(conn: Db, clinic_id: UUID, booking_id: UUID, allowed: tuple[str, ...],
                        status: str, *, started_by: datetime | None = None,
                        reason: str | None = None, actor: str | None = None) -> Booking | None:
    """Move a booking from one of `allowed` to `status` (version + 1), if its session started
    by `started_by` (None: whenever); None if it is unknown or was not allowed."""
    return await _one_booking(conn, Q.change_status, booking_id, clinic_id, list(allowed),
                              status, started_by, reason, actor)


async def set_ride(conn: Db, clinic_id: UUID, booking_id: UUID, allowed: tuple[str, ...],
                   ride_status: str, driver: str | None) -> Booking | None:
    return await _one_booking(conn, Q.set_ride, booking_id, clinic_id, list(allowed),
                              ride_status, driver)


async def booking_to_move(conn: Db, clinic_id: UUID,
                          booking_id: UUID) -> tuple[Booking, SessionType] | None:
    """A booking, locked, with its session type as the network now has it."""
    record = await conn.fetchrow(Q.booking_to_move, booking_id, clinic_id)
    return None if record is None else (_booking(record), _row(SessionType, record))


class Taken(Exception):
    """An exclusion constraint found the room, provider or patient busy: nothing changed."""


async def move_booking(conn: Connection, clinic_id: UUID, booking_id: UUID,
                       allowed: tuple[str, ...], where: Placement) -> Booking | None:
    """Move a booking in one of `allowed` (version + 1); None if it is unknown or was not
    allowed, `Taken` if the new time is not free (in a savepoint: the caller's transaction
    goes on, to find out what is in the way)."""
    try:
        async with conn.transaction():
            return await _one_booking(conn, Q.move_booking, booking_id, clinic_id, list(allowed),
                                      where.starts_at, where.ends_at, where.occupied_until,
                                      where.room_id, where.provider_id)
    except asyncpg.ExclusionViolationError:
        raise Taken from None


async def set_confirmed(conn: Db, booking_id: UUID) -> None:
    await conn.execute(Q.set_confirmed, booking_id)


async def set_support_confirmed(conn: Db, clinic_id: UUID, booking_id: UUID) -> Booking | None:
    return await _one_booking(conn, Q.set_support_confirmed, booking_id, clinic_id)


async def set_reschedule_requested(conn: Db, booking_id: UUID) -> None:
    await conn.execute(Q.set_reschedule_requested, booking_id)


async def booking_context(conn: Connection, clinic_id: UUID, site_id: UUID, patient_id: UUID,
                          code: str) -> BookingContext | None:
    """What booking `code` sessions for the patient at the site needs (in a transaction,
    the patient is locked; outside one, a lock would end with the statement, so none is
    taken); None: unknown patient."""
    query = Q.booking_context if conn.is_in_transaction() else Q.booking_context_unlocked
    r = await conn.fetchrow(query, clinic_id, site_id, patient_id, code)
    if r is None:
        return None
    return BookingContext(r["patient_id"], r["clinic_id"], r["sms_consent"], r["site_id"],
                          None if r["code"] is None else _row(SessionType, r),
                          None if r["site_id"] is None else _row(Context, r))


def _rules(clinic_id: UUID, site_id: UUID, when: Span, room_id: UUID | None,
           provider_id: UUID | None) -> tuple[Any, ...]:
    """The parameters of placement_rules ($1 to $8)."""
    start = when.local_start
    return (site_id, clinic_id, start.date(), start.isoweekday(), start.time(),
            when.local_end.time(), room_id, provider_id)


async def fit(conn: Db, clinic_id: UUID, site_id: UUID, when: Span, *, room_id: UUID | None,
              provider_id: UUID | None, moving: UUID, prefer_room: UUID | None,
              prefer_provider: UUID | None) -> Fit:
    """How `when` fits the site's rules, and the free room and provider (see placement;
    placement_given when both are given)."""
    rules = _rules(clinic_id, site_id, when, room_id, provider_id)
    if room_id is not None and provider_id is not None:
        return await _made(conn, Fit, Q.placement_given, *rules)
    return await _made(conn, Fit, Q.placement, *rules, when.starts_at, when.occupied_until,
                       moving, prefer_room, prefer_provider)


async def insert_booking(conn: Db, booking_id: UUID, ctx: BookingContext, stype: SessionType,
                         about: Context, when: Span, where: Placement, series_id: UUID | None,
                         visit: Visit, join_link: str | None,
                         announced: Envelope[Any], audit: tuple[Any, ...] | None = None,
                         source: str = "staff") -> tuple[Booking | None, Fit]:
    """Insert a booking at `where`, its event `announced` and the request's audit entry
    (`audit`: `shared.audit.Entry.inline()`) in one statement, if `when` fits the site's rules
    with `where`'s room and provider. Answers the booking, None (and no event, no entry) when
    the rules refused it or an exclusion constraint found the room, provider or patient busy,
    and how the time fits (as `fit` answers with the room and provider given). `source`:
    staff, or online (the public booking page)."""
    assert ctx.site_id is not None
    r = await conn.fetchrow(
        Q.insert_booking_with_event,
        *_rules(ctx.clinic_id, ctx.site_id, when, where.room_id, where.provider_id),
        booking_id, ctx.patient_id, series_id, stype.code, stype.is_dosing,
        where.starts_at, where.ends_at, where.occupied_until, visit.mode, join_link,
        visit.support_name, visit.support_phone, visit.support_consent, source,
        *row(announced), *(audit or NO_AUDIT))
    assert r is not None
    booking = None if r["id"] is None else \
        Booking(**{name: r[name] for name in _BOOKING_OWN}, about=about)
    return booking, _row(Fit, r)


async def book_at_once(conn: Db, clinic_id: UUID, patient_id: UUID, site_id: UUID,
                       timezone: str, stype: SessionType, when: Span, room_id: UUID,
                       provider_id: UUID, booking_id: UUID, event_id: UUID,
                       correlation_id: UUID | None, trace_context: str | None,
                       audit: tuple[Any, ...] | None = None) -> Booking | None:
    """Book one session in clinic at `when` in its room with its provider, its
    `SessionBooked` event (`event_id`) and the request's audit entry (`audit`) in one
    statement, if every check passes and the site's `timezone` and `stype`'s durations (which
    `when` was worked out from) are still those (see book_at_once in queries.sql); None, with
    nothing written, if anything refused it."""
    start = when.local_start
    return await _one_booking(
        conn, Q.book_at_once, clinic_id, site_id, patient_id, stype.code, when.starts_at,
        room_id, provider_id, booking_id, event_id, correlation_id, trace_context, timezone,
        stype.duration_minutes, stype.recovery_minutes, when.ends_at, when.occupied_until,
        start.date(), start.isoweekday(), start.time(), when.local_end.time(),
        *(audit or NO_AUDIT))


async def what_conflicts(db: Db, where: Placement, patient_id: UUID) -> Clash | None:
    """Which of room, provider or patient is busy then, and with which booking."""
    return await _one(db, Clash, Q.what_conflicts, where.starts_at, where.occupied_until,
                      where.room_id, where.provider_id, patient_id)


async def busy_at_site(db: Db, site_id: UUID, start: datetime, end: datetime) -> list[Busy]:
    """What holds the site's rooms and providers between `start` and `end`."""
    return [tuple(r) for r in await db.fetch(Q.busy_at_site, site_id, start, end)]


# --- the waitlist -------------------------------------------------------------------------


async def insert_waitlist_entry(conn: Db, entry_id: UUID, clinic_id: UUID, patient_id: UUID,
                                site_id: UUID, code: str, window_start: datetime,
                                window_end: datetime) -> WaitlistEntry:
    return await _made(conn, WaitlistEntry, Q.insert_waitlist_entry, entry_id, clinic_id,
                       patient_id, site_id, code, window_start, window_end)


async def list_waitlist(db: Db, clinic_id: UUID, site_id: UUID | None, after: After,
                        limit: int) -> list[WaitlistEntry]:
    return await _all(db, WaitlistEntry, Q.list_waitlist, clinic_id, site_id, *after, limit)


async def waiting_for_slot(conn: Db, freed: Booking) -> list[Waiting]:
    """The patients (not the freed booking's own) waiting for a slot like the freed one."""
    return await _all(conn, Waiting, Q.waiting_for_slot, freed.site_id, freed.session_type,
                      freed.starts_at, freed.patient_id)


async def insert_offer(conn: Db, offer_id: UUID, freed: Booking, candidates: list[UUID]) -> None:
    await conn.execute(Q.insert_offer, offer_id, freed.clinic_id, freed.site_id, freed.room_id,
                       freed.provider_id, freed.session_type, freed.starts_at, freed.id,
                       candidates)


async def lock_offer(conn: Db, clinic_id: UUID, offer_id: UUID) -> Offer | None:
    return await _one(conn, Offer, Q.lock_offer, offer_id, clinic_id)


async def take_offer(conn: Db, offer: Offer, patient_id: UUID, booking_id: UUID) -> None:
    """The offer is taken by the patient (their new booking), and they wait no more for a
    slot like it."""
    await conn.execute(Q.take_offer, offer.id, patient_id, booking_id)
    await conn.execute(Q.waitlist_booked, patient_id, offer.site_id, offer.session_type)


# --- Idempotency-Key ----------------------------------------------------------------------


async def claim_idempotency_key(conn: Db, clinic_id: UUID, key: str, digest: str) -> bool:
    """Whether this request is the key's first (it is the key's now)."""
    return bool(await conn.fetchval(Q.claim_idempotency_key, clinic_id, key, digest))


async def idempotent_response(conn: Db, clinic_id: UUID, key: str) -> StoredResponse:
    return await _made(conn, StoredResponse, Q.idempotent_response, clinic_id, key)


async def keep_idempotent_response(conn: Db, clinic_id: UUID, key: str, status_code: int,
                                   body: str) -> None:
    await conn.execute(Q.keep_idempotent_response, clinic_id, key, status_code, body)


# --- staff --------------------------------------------------------------------------------


async def insert_staff(conn: Db, staff_id: UUID, clinic_id: UUID, email: str, name: str,
                       role: str, language: str, enrolment_hash: str, expires: datetime,
                       created_by: str) -> NewStaff | None:
    """A new person; None if the email already signs someone in."""
    return await _one(conn, NewStaff, Q.insert_staff, staff_id, clinic_id, email, name, role,
                      language, enrolment_hash, expires, created_by)


async def list_staff(db: Db, clinic_id: UUID) -> list[StaffMember]:
    return await _all(db, StaffMember, Q.list_staff, clinic_id)


async def get_staff(db: Db, clinic_id: UUID, staff_id: UUID) -> StaffMember | None:
    return await _one(db, StaffMember, Q.get_staff, staff_id, clinic_id)


async def staff_for_sign_in(db: Db, email: str) -> Credentials | None:
    return await _one(db, Credentials, Q.staff_for_sign_in, email)


async def staff_by_enrolment(conn: Db, digest: str) -> Credentials | None:
    """The person an unexpired enrolment code is for (locked)."""
    return await _one(conn, Credentials, Q.staff_by_enrolment, digest)


async def offer_totp(conn: Db, staff_id: UUID, secret: str) -> str:
    """The authenticator secret offered to the person: `secret`, or the one offered before."""
    value: str = await conn.fetchval(Q.offer_totp, staff_id, secret)
    return value


async def complete_enrolment(conn: Db, staff_id: UUID, password_hash: str,
                             totp_secret: str | None, step: int | None) -> None:
    await conn.execute(Q.complete_enrolment, staff_id, password_hash, totp_secret, step)


async def reset_enrolment(conn: Db, clinic_id: UUID, staff_id: UUID, digest: str,
                          expires: datetime) -> bool:
    """Whether the person is the network's (their enrolment starts again)."""
    return await conn.fetchval(Q.reset_enrolment, staff_id, clinic_id, digest, expires) is not None


async def set_role(conn: Db, clinic_id: UUID, staff_id: UUID, role: str) -> None:
    await conn.execute(Q.set_role, staff_id, clinic_id, role)


async def set_language(db: Db, staff_id: UUID, language: str) -> None:
    await db.execute(Q.set_language, staff_id, language)


async def disable_staff(conn: Db, clinic_id: UUID, staff_id: UUID) -> bool:
    """Whether the person is the network's (they are disabled now, if not before)."""
    return await conn.fetchval(Q.disable_staff, staff_id, clinic_id) is not None


async def use_totp_step(conn: Db, staff_id: UUID, step: int) -> bool:
    """Whether the TOTP step is later than the last one used (it is the last one now)."""
    return await conn.fetchval(Q.use_totp_step, staff_id, step) is not None


async def signing_key(conn: Db, clinic_id: UUID) -> SigningKey | None:
    return await _one(conn, SigningKey, Q.signing_key, clinic_id)


async def insert_signing_key(conn: Db, kid: str, clinic_id: UUID, private_pem: bytes,
                             public_pem: str) -> bool:
    """Whether this key became the network's (another may have been made first)."""
    return await conn.fetchval(Q.insert_signing_key, kid, clinic_id, private_pem,
                               public_pem) is not None


async def failures(db: Db, account: str, address: str, window_seconds: float) -> Failures:
    return await _made(db, Failures, Q.failures, account, address, window_seconds)


async def record_failure(db: Db, subjects: list[str]) -> None:
    await db.execute(Q.record_failure, subjects)


async def forget_failures(conn: Db, account: str) -> None:
    """Forget the account's failures (and everyone's older than a day)."""
    await conn.execute(Q.forget_failures, account)


async def insert_session(conn: Db, session_id: UUID, staff_id: UUID, clinic_id: UUID,
                         expires: datetime) -> None:
    await conn.execute(Q.insert_session, session_id, staff_id, clinic_id, expires)


async def open_session(db: Db, session_id: UUID) -> OpenSession | None:
    return await _one(db, OpenSession, Q.open_session, session_id)


async def end_sessions(conn: Db, staff_id: UUID, session_id: UUID | None) -> list[EndedSession]:
    return await _all(conn, EndedSession, Q.end_sessions, staff_id, session_id)


# --- staff screens (JSON built by PostgreSQL) ---------------------------------------------


async def sheet(db: Db, clinic_id: UUID, site_id: UUID, first: date, last: date) -> str | None:
    value: str | None = await db.fetchval(Q.sheet, site_id, clinic_id, first, last)
    return value


async def search_patients(db: Db, clinic_id: UUID, words: list[str], digits: str,
                          limit: int) -> list[PatientMatch]:
    return await _all(db, PatientMatch, Q.search_patients, clinic_id, words, digits, limit)


async def patient_overview(db: Db, clinic_id: UUID, patient_id: UUID) -> str | None:
    value: str | None = await db.fetchval(Q.patient_overview, patient_id, clinic_id)
    return value


async def patient_names(db: Db, clinic_id: UUID, ids: list[UUID]) -> dict[str, str]:
    return {str(r["id"]): r["name"] for r in await db.fetch(Q.patient_names, clinic_id, ids)}


async def attention(db: Db, clinic_id: UUID, ride_hours: int) -> str:
    value: str = await db.fetchval(Q.attention, clinic_id, ride_hours)
    return value


async def network(db: Db, clinic_id: UUID) -> str:
    value: str = await db.fetchval(Q.network, clinic_id)
    return value


# --- online consultation booking ------------------------------------------------------------


async def clinic_by_slug(db: Db, slug: str) -> Clinic | None:
    return await _one(db, Clinic, Q.clinic_by_slug, slug)


async def consultation_sites(db: Db, clinic_id: UUID) -> list[Site]:
    """The network's sites where someone who takes consultations works."""
    return await _all(db, Site, Q.consultation_sites, clinic_id)


async def consultation_hours_at_site(db: Db, site_id: UUID) -> list[Shift]:
    """The working hours at a site of the providers who take consultations."""
    return await _all(db, Shift, Q.consultation_hours_at_site, site_id)


async def lock_code_limits(conn: Db, phone: str, address: str, clinic_id: UUID) -> None:
    """Hold the code limits of this number, address and network until the transaction ends
    (a concurrent request for any of them waits), so that counting and inserting are one."""
    await conn.execute(Q.lock_code_limits, [f"online-number:{phone}", f"online-address:{address}",
                                            f"online-network:{clinic_id}"])


async def recent_code_requests(db: Db, phone: str, address: str, clinic_id: UUID,
                               since: datetime) -> Recent:
    return await _made(db, Recent, Q.recent_code_requests, phone, address, clinic_id, since)


async def insert_online_request(conn: Db, *values: Any) -> None:
    """A visitor's request, from the columns of insert_online_request ($1 id ... $17
    expires_at)."""
    await conn.execute(Q.insert_online_request, *values)


async def online_request(conn: Db, clinic_id: UUID, request_id: UUID) -> OnlineRequest | None:
    """The network's request, locked (in the caller's transaction)."""
    return await _one(conn, OnlineRequest, Q.online_request, request_id, clinic_id)


async def count_wrong_code(conn: Db, request_id: UUID) -> None:
    await conn.execute(Q.count_wrong_code, request_id)


async def online_request_booked(conn: Db, request_id: UUID, booking_id: UUID,
                                patient_id: UUID) -> None:
    await conn.execute(Q.online_request_booked, request_id, booking_id, patient_id)


async def patients_with_phone(conn: Db, clinic_id: UUID, phone: str) -> list[Patient]:
    """The network's patients with this number, locked."""
    return await _all(conn, Patient, Q.patients_with_phone, clinic_id, phone)


async def lead_seen(conn: Db, clinic_id: UUID, booking_id: UUID) -> bool:
    """Whether the network's online booking was found (it is now marked seen)."""
    return await conn.fetchval(Q.lead_seen, booking_id, clinic_id) is not None
