"""The booking service's command handlers: plain functions on one connection.

Each runs inside the caller's transaction and queues its events in the outbox there, so a
state change and its events commit together or not at all.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import asyncpg
import phonenumbers

from services.booking.commands import AddClinic, AddSite, BookSession, RegisterPatient
from shared.db import Queries
from shared.errors import Invalid, NotFound
from shared.events import Envelope
from shared.events.booking import PatientRegistered, SessionBooked
from shared.outbox import enqueue

PRODUCER = "booking"
Q = Queries(Path(__file__).with_name("queries.sql"))


def normalise_mobile(raw: str, regions: tuple[str, ...] = ("US", "CA")) -> str:
    """The number in E.164 if it is a valid number of one of `regions`, else `Invalid`."""
    for region in regions:
        try:
            number = phonenumbers.parse(raw, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number) and \
                phonenumbers.region_code_for_number(number) in regions:
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    raise Invalid("phone is not a valid US or Canadian number", field="phone")


async def add_clinic(conn: asyncpg.Connection, cmd: AddClinic) -> asyncpg.Record:
    return await conn.fetchrow(Q.insert_clinic, uuid4(), cmd.name, cmd.phone)


async def add_site(conn: asyncpg.Connection, cmd: AddSite) -> asyncpg.Record:
    if not await conn.fetchval(Q.clinic_exists, cmd.clinic_id):
        raise NotFound("unknown clinic", field="clinic_id")
    return await conn.fetchrow(Q.insert_site, uuid4(), cmd.clinic_id, cmd.name, cmd.address,
                               cmd.phone, cmd.timezone, cmd.default_language)


async def register_patient(conn: asyncpg.Connection, cmd: RegisterPatient,
                           regions: tuple[str, ...] = ("US", "CA")) -> asyncpg.Record:
    if not await conn.fetchval(Q.clinic_exists, cmd.clinic_id):
        raise NotFound("unknown clinic", field="clinic_id")
    phone = normalise_mobile(cmd.phone, regions)
    consent_at = datetime.now(UTC) if cmd.sms_consent else None
    row = await conn.fetchrow(Q.insert_patient, uuid4(), cmd.clinic_id, cmd.given_name,
                              cmd.family_name, phone, cmd.language, cmd.sms_consent, consent_at,
                              cmd.sms_consent_source)
    await enqueue(conn, [Envelope.new(
        PatientRegistered(phone_e164=phone, language=cmd.language, sms_consent=cmd.sms_consent,
                          sms_consent_at=consent_at, sms_consent_source=cmd.sms_consent_source),
        producer=PRODUCER, clinic_id=cmd.clinic_id, patient_id=row["id"])])
    return row


async def book_session(conn: asyncpg.Connection, cmd: BookSession,
                       now: datetime | None = None) -> asyncpg.Record:
    """Book one session and queue `SessionBooked`."""
    now = now or datetime.now(UTC)
    patient = await conn.fetchrow(Q.get_patient, cmd.patient_id)
    if patient is None:
        raise NotFound("unknown patient", field="patient_id")
    site = await conn.fetchrow(Q.get_site_with_clinic, cmd.site_id)
    if site is None or site["clinic_id"] != patient["clinic_id"]:
        raise NotFound("unknown site", field="site_id")
    stype = await conn.fetchrow(Q.get_session_type, cmd.session_type)
    if stype is None:
        raise Invalid(f"unknown session type {cmd.session_type!r}", field="session_type")
    starts_at = cmd.starts_at.astimezone(UTC)
    if starts_at < now:
        raise Invalid("a session cannot be booked in the past", field="starts_at")
    ends_at = starts_at + timedelta(minutes=stype["duration_minutes"] + stype["recovery_minutes"])
    booking = await conn.fetchrow(Q.insert_booking, uuid4(), patient["clinic_id"], site["id"],
                                  patient["id"], stype["code"], starts_at, ends_at)
    await enqueue(conn, [Envelope.new(
        SessionBooked(
            booking_id=booking["id"], version=booking["version"], series_id=booking["series_id"],
            clinic_name=site["clinic_name"], clinic_phone=site["clinic_phone"],
            site_id=site["id"], site_name=site["name"], site_address=site["address"],
            site_phone=site["phone"], site_timezone=site["timezone"],
            session_type=stype["code"], is_dosing=stype["is_dosing"],
            fasting_rule=stype["fasting_rule"], starts_at=starts_at, ends_at=ends_at,
            patient_language=patient["language"]),
        producer=PRODUCER, clinic_id=patient["clinic_id"], patient_id=patient["id"])])
    return booking
