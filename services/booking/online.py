"""Online consultation booking: the public's first contact (no account, no API key).

A visitor of a network's public page (the console's `/book/<slug>`) sees the free
15-minute consultations of the next 14 days (by phone or video: a provider who takes
consultations, no room), asks for one with their name, mobile number, language and consent
to texts, and gets a 6-digit code by text (through the notifier: `OnlineCodeRequested`).
Only the code's HMAC is kept; it is good for 10 minutes and 5 tries. Codes are limited per
number, per address and per network. With the right code the consultation is booked (source
"online"), for the patient of that network with the verified number and the same name, or a
new one: the answer is the same either way. Plain functions on one connection, in the
caller's transaction; the rules are services/booking/online_rules.py."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

from services.booking import rules, store
from services.booking.availability import candidates, closed_days, open_slots
from services.booking.bookings import appointment_fields
from services.booking.commands import AskForConsultation
from services.booking.localtime import local_iso
from services.booking.model import (
    Booking,
    Clinic,
    Context,
    OnlineRequest,
    Patient,
    Placement,
    Visit,
)
from services.booking.network import session_type
from services.booking.online_rules import (
    CODE_VALID,
    Limits,
    check_code,
    check_start,
    code_hash,
    merged_hours,
    name_key,
    new_code,
    over_limit,
)
from shared.consent import ONLINE_CONSENT
from shared.db import Connection
from shared.errors import Conflict, DomainError, Invalid
from shared.events.booking import (
    OnlineCodeRequested,
    PatientContactChanged,
    PatientRegistered,
    SessionBooked,
)
from shared.sealed import seal

CONSULTATION = "consultation"
DAYS = 14
STEP = timedelta(minutes=15)
ANY_ROOM = UUID(int=0)  # remote sessions need none: a stand-in that is never busy
WINDOW = timedelta(hours=1)


class TooMany(DomainError):
    status_code = 429
    code = "too_many_requests"


class NotSetUp(DomainError):
    status_code = 503
    code = "online_booking_not_set_up"


@dataclass(frozen=True, slots=True)
class FreeConsultation:
    starts_at: datetime
    site_id: UUID
    provider_id: UUID


async def free_consultations(conn: Connection, clinic_id: UUID, now: datetime,
                             lead: timedelta, days: int = DAYS) -> list[FreeConsultation]:
    """The free consultations of the next `days` days (from `lead` after now), one per start
    time (the first site and provider free then), in time order: per site, the hours of the
    providers who take consultations, less closures and their bookings anywhere."""
    stype = await session_type(conn, clinic_id, CONSULTATION)
    length = timedelta(minutes=stype.duration_minutes + stype.recovery_minutes)
    found: dict[datetime, FreeConsultation] = {}
    for site in await store.consultation_sites(conn, clinic_id):
        tz = ZoneInfo(site.timezone)
        first = now.astimezone(tz).date()
        last = first + timedelta(days=days - 1)
        shifts = await store.consultation_hours_at_site(conn, site.id)
        by_day: dict[int, list[tuple[time, time]]] = defaultdict(list)
        for shift in shifts:
            by_day[shift.weekday].append((shift.starts, shift.ends))
        hours = {day: merged_hours(spans) for day, spans in by_day.items()}
        closed = closed_days(await store.closures_between(conn, site.id, first, last))
        cands = candidates(first, last, hours, closed, tz, length, STEP, now + lead)
        if not cands:
            continue
        busy = await store.busy_at_site(conn, site.id, cands[0].start, cands[-1].start + length)
        for slot in open_slots(cands, [ANY_ROOM], shifts, busy, length):
            found.setdefault(slot.starts_at, FreeConsultation(slot.starts_at, site.id,
                                                              slot.provider_id))
    return [found[at] for at in sorted(found)]


async def ask(conn: Connection, clinic: Clinic, cmd: AskForConsultation, phone: str,
              address: str, now: datetime, *, limits: Limits, lead: timedelta,
              pepper: str, key: str) -> dict[str, Any]:
    """Keep a visitor's request and text them a code (`OnlineCodeRequested`, the code sealed
    with `key`): 429 past a limit, 422 naming the field when the consent is missing or the
    time not free, 503 without a key. Whether the number is a patient's is not looked at."""
    if not key:
        raise NotSetUp("online booking is not set up (ONLINE_CODE_KEY): please call the clinic")
    if not cmd.consent:
        raise Invalid("the consent to texts is needed to book online", field="consent")
    if cmd.consent_version not in ONLINE_CONSENT:
        raise Invalid("unknown consent wording", field="consent_version")
    await store.lock_code_limits(conn, phone, address, clinic.id)
    if over_limit(await store.recent_code_requests(conn, phone, address, clinic.id, now - WINDOW),
                  limits):
        raise TooMany("too many codes asked for: try again in an hour")
    free = {f.starts_at: f for f in await free_consultations(conn, clinic.id, now, lead)}
    check_start(cmd.starts_at, list(free))
    chosen = free[cmd.starts_at]
    request_id, code, expires_at = uuid4(), new_code(), now + CODE_VALID
    await store.insert_online_request(
        conn, request_id, clinic.id, chosen.site_id, chosen.provider_id, chosen.starts_at,
        cmd.mode, cmd.given_name, cmd.family_name, phone, cmd.language, cmd.timezone,
        cmd.consent_version, now, address, cmd.user_agent, code_hash(request_id, code, pepper),
        expires_at)
    await store.emit(conn, [store.event(OnlineCodeRequested(
        request_id=request_id, phone_e164=phone, sealed_code=seal(key, code),
        language=cmd.language, clinic_name=clinic.name, clinic_sms_name=clinic.sms_name,
        expires_at=expires_at),
        clinic.id, None)])
    return {"request_id": request_id, "expires_at": expires_at}


async def verify(conn: Connection, clinic: Clinic, request_id: UUID, code: str,
                 now: datetime, pepper: str) -> tuple[str, dict[str, Any] | None, UUID | None]:
    """Check a request's code: (`ok`, the booking, its patient) or (why not, None, None); a
    wrong code counts as a try (the caller commits it before refusing). The patient's id is
    for the audit trail, never for the visitor."""
    req = await store.online_request(conn, clinic.id, request_id)
    if req is None:
        raise Invalid("unknown request: ask for a new code", field="request_id")
    verdict = check_code(req, code, now, pepper)
    if verdict == "wrong":
        await store.count_wrong_code(conn, req.id)
    if verdict != "ok":
        return verdict, None, None
    patient = await _patient(conn, clinic, req)
    booking = await _book(conn, clinic, req, patient, now)
    await store.online_request_booked(conn, req.id, booking.id, patient.id)
    return "ok", {"booking_id": booking.id, "starts_at": booking.starts_at.isoformat(),
                  "ends_at": booking.ends_at.isoformat(), "mode": booking.mode,
                  "timezone": req.timezone,
                  "starts_at_local": local_iso(booking.starts_at, req.timezone)}, patient.id


async def _patient(conn: Connection, clinic: Clinic, req: OnlineRequest) -> Patient:
    """The network's patient with the verified number and the same name (case, accents and
    spaces aside), now consenting to texts and in the visitor's time zone (their texts quote
    it); else a new patient, in that zone."""
    source = f"online booking page ({req.consent_version})"
    key = (name_key(req.given_name), name_key(req.family_name))
    match = next((p for p in await store.patients_with_phone(conn, clinic.id, req.phone_e164)
                  if (name_key(p.given_name), name_key(p.family_name)) == key), None)
    if match is None:
        patient = await store.insert_patient(
            conn, uuid4(), clinic.id, req.given_name, req.family_name, req.phone_e164,
            req.language, True, req.consent_at, source, None, None, False, None, req.timezone)
        await store.emit(conn, [store.event(PatientRegistered(
            phone_e164=patient.phone_e164, language=patient.language, sms_consent=True,
            sms_consent_at=patient.sms_consent_at, sms_consent_source=source),
            clinic.id, patient.id)])
        return patient
    if match.timezone != req.timezone:
        moved = await store.set_patient_timezone(conn, clinic.id, match.id, req.timezone)
        assert moved is not None  # locked above
        match = moved
    if match.sms_consent:
        return match
    consenting = await store.set_sms_consent(conn, clinic.id, match.id, True, source)
    assert consenting is not None  # locked above
    await store.emit(conn, [store.event(PatientContactChanged(
        phone_e164=consenting.phone_e164, language=consenting.language, sms_consent=True,
        ride_contact=consenting.ride_contact), clinic.id, consenting.id)])
    return consenting


def _join_link(mode: str, about: Context, booking_id: UUID) -> str | None:
    """How the visitor joins their consultation: the network's call-in number (phone) or video
    link; None when the network has none (the clinic calls, or staff text the link)."""
    try:
        return rules.join_link(mode, None, about.call_in_phone, about.video_link_template,
                               booking_id)
    except Invalid:
        return None


async def _book(conn: Connection, clinic: Clinic, req: OnlineRequest,
                patient: Patient, now: datetime) -> Booking:
    """The consultation of the request, by phone or video with its provider (no room), and
    its `SessionBooked`; 409 on `starts_at` when the time was taken meanwhile."""
    ctx = await store.booking_context(conn, clinic.id, req.site_id, patient.id, CONSULTATION)
    assert ctx is not None and ctx.about is not None and ctx.stype is not None
    stype, about = ctx.stype, ctx.about
    when = rules.span(req.starts_at, stype, about.site_timezone, now)
    where = Placement(when.starts_at, when.ends_at, when.occupied_until, None, req.provider_id)
    booking_id, visit = uuid4(), Visit(mode=req.mode)
    link = _join_link(req.mode, about, booking_id)
    booked = SessionBooked(**appointment_fields(booking_id, 1, None, req.site_id, stype.code,
                                                stype.is_dosing, where, about, visit, link))
    # written only if the site is open that day and the provider works then, and is free
    booking, _ = await store.insert_booking(conn, booking_id, ctx, stype, about, when, where,
                                            None, visit, link,
                                            store.event(booked, clinic.id, patient.id),
                                            source="online")
    if booking is None:
        raise Conflict("that time was just taken: choose another", field="starts_at")
    return booking
