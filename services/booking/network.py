"""Setting up a clinic network: the clinic, its API keys, sites, rooms, providers, session
type overrides and patients. Plain functions on one connection, in the caller's transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

import asyncpg
import phonenumbers

from shared.auth import Principal, new_key
from services.booking.commands import (AddClinic, AddClosure, AddProvider, AddRoom, AddSite,
                                       IssueApiKey, OverrideSessionType, RegisterPatient)
from services.booking.db import PRODUCER, Q
from shared.errors import Invalid, NotFound
from shared.events import Envelope
from shared.events.booking import ApiKeyIssued, ApiKeyRevoked, PatientRegistered, RideContact
from shared.outbox import enqueue
from shared.sms import ADDRESS_MAX, CLINIC_NAME_MAX, SITE_NAME_MAX, text_field_problem


def normalise_mobile(raw: str, regions: tuple[str, ...] = ("US", "CA"), field: str = "phone") -> str:
    """The number in E.164 if it is a valid number of one of `regions`, else `Invalid`."""
    for region in regions:
        try:
            number = phonenumbers.parse(raw, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number) and \
                phonenumbers.region_code_for_number(number) in regions:
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    raise Invalid(f"{field} is not a valid US or Canadian number", field=field)


def check_for_texts(field: str, value: str, cap: int, *, address: bool = False,
                    hint: str = "") -> None:
    """`Invalid`, naming `field`, if `value` cannot go into texts (see shared.sms)."""
    problem = text_field_problem(value, cap, address=address)
    if problem:
        raise Invalid(f"{field} {problem}{hint}", field=field)


def check_names_for_texts(name: str, sms_name: str | None, cap: int) -> None:
    """The name texts use: `sms_name`, else `name` (which may then be set aside for texts
    by giving an `sms_name`)."""
    if sms_name is not None:
        check_for_texts("sms_name", sms_name, cap)
    else:
        check_for_texts("name", name, cap, hint="; or give an sms_name, a short name for texts")


async def add_clinic(conn: asyncpg.Connection, cmd: AddClinic) -> dict:
    """A new clinic network and its first (admin) API key, shown only here."""
    check_names_for_texts(cmd.name, cmd.sms_name, CLINIC_NAME_MAX)
    clinic = await conn.fetchrow(Q.insert_clinic, uuid4(), cmd.name, cmd.phone, cmd.sms_name)
    key = await _issue(conn, clinic["id"], "admin", "initial admin key")
    return {**dict(clinic), "api_key": key["api_key"]}


async def issue_api_key(conn: asyncpg.Connection, who: Principal, cmd: IssueApiKey) -> dict:
    return await _issue(conn, who.clinic_id, cmd.role, cmd.label)


async def _issue(conn: asyncpg.Connection, clinic_id: UUID, role: str, label: str) -> dict:
    """A new key (shown once); its hash goes to the other services as `ApiKeyIssued`."""
    key, key_hash = new_key()
    row = await conn.fetchrow(Q.insert_api_key, uuid4(), clinic_id, key_hash, role, label)
    await enqueue(conn, [Envelope.new(
        ApiKeyIssued(key_id=row["id"], key_hash=key_hash, role=role, label=label),
        producer=PRODUCER, clinic_id=clinic_id, patient_id=None)])
    return {**dict(row), "api_key": key}


async def revoke_api_key(conn: asyncpg.Connection, who: Principal, key_id: UUID) -> dict:
    if await conn.fetchval(Q.revoke_api_key, key_id, who.clinic_id) is None:
        raise NotFound("unknown or already revoked API key")
    await enqueue(conn, [Envelope.new(ApiKeyRevoked(key_id=key_id), producer=PRODUCER,
                                      clinic_id=who.clinic_id, patient_id=None)])
    return {"id": key_id, "revoked": True}


async def add_site(conn: asyncpg.Connection, who: Principal, cmd: AddSite) -> dict:
    check_names_for_texts(cmd.name, cmd.sms_name, SITE_NAME_MAX)
    check_for_texts("address", cmd.address, ADDRESS_MAX, address=True)
    site = await conn.fetchrow(Q.insert_site, uuid4(), who.clinic_id, cmd.name, cmd.address,
                               cmd.phone, cmd.timezone, cmd.default_language, cmd.region,
                               cmd.sms_name)
    await conn.execute(Q.insert_site_hours, site["id"], [h.weekday for h in cmd.hours],
                       [h.opens for h in cmd.hours], [h.closes for h in cmd.hours])
    return {**dict(site), "hours": [h.model_dump() for h in cmd.hours]}


async def get_site(conn: asyncpg.Connection, clinic_id: UUID, site_id: UUID) -> asyncpg.Record:
    site = await conn.fetchrow(Q.get_site, site_id, clinic_id)
    if site is None:
        raise NotFound("unknown site", field="site_id")
    return site


async def add_closure(conn: asyncpg.Connection, who: Principal, site_id: UUID, cmd: AddClosure) -> dict:
    await get_site(conn, who.clinic_id, site_id)
    return dict(await conn.fetchrow(Q.insert_closure, uuid4(), site_id, cmd.first_day,
                                    cmd.last_day, cmd.reason))


async def add_room(conn: asyncpg.Connection, who: Principal, cmd: AddRoom) -> dict:
    await get_site(conn, who.clinic_id, cmd.site_id)
    return dict(await conn.fetchrow(Q.insert_room, uuid4(), who.clinic_id, cmd.site_id, cmd.name))


async def add_provider(conn: asyncpg.Connection, who: Principal, cmd: AddProvider) -> dict:
    site_ids = list({h.site_id for h in cmd.hours})
    if await conn.fetchval(Q.sites_in_clinic, who.clinic_id, site_ids) != len(site_ids):
        raise NotFound("unknown site in hours", field="hours")
    provider = await conn.fetchrow(Q.insert_provider, uuid4(), who.clinic_id, cmd.name)
    await conn.execute(Q.insert_provider_hours, provider["id"], [h.site_id for h in cmd.hours],
                       [h.weekday for h in cmd.hours], [h.opens for h in cmd.hours],
                       [h.closes for h in cmd.hours])
    return {**dict(provider), "hours": [h.model_dump() for h in cmd.hours]}


async def override_session_type(conn: asyncpg.Connection, who: Principal, code: str,
                                cmd: OverrideSessionType) -> dict:
    if await conn.fetchrow(Q.session_type, who.clinic_id, code) is None:
        raise NotFound("unknown session type")
    await conn.execute(Q.upsert_session_type_override, who.clinic_id, code, cmd.duration_minutes,
                       cmd.recovery_minutes, cmd.fasting_rule)
    return dict(await conn.fetchrow(Q.session_type, who.clinic_id, code))


def ride_contact_of(patient: asyncpg.Record) -> RideContact | None:
    """The ride contact, only if they consented to be texted."""
    if patient["ride_contact_consent"] and patient["ride_contact_phone"]:
        return RideContact(name=patient["ride_contact_name"], phone_e164=patient["ride_contact_phone"])
    return None


async def register_patient(conn: asyncpg.Connection, who: Principal, cmd: RegisterPatient,
                           regions: tuple[str, ...] = ("US", "CA")) -> asyncpg.Record:
    phone = normalise_mobile(cmd.phone, regions)
    now = datetime.now(UTC)
    ride = cmd.ride_contact
    ride_phone = normalise_mobile(ride.phone, regions, "ride_contact.phone") if ride else None
    row = await conn.fetchrow(
        Q.insert_patient, uuid4(), who.clinic_id, cmd.given_name, cmd.family_name, phone,
        cmd.language, cmd.sms_consent, now if cmd.sms_consent else None,
        cmd.sms_consent_source if cmd.sms_consent else None,
        ride.name if ride else None, ride_phone, bool(ride and ride.sms_consent),
        now if ride and ride.sms_consent else None)
    await enqueue(conn, [Envelope.new(
        PatientRegistered(phone_e164=phone, language=cmd.language, sms_consent=cmd.sms_consent,
                          sms_consent_at=row["sms_consent_at"],
                          sms_consent_source=row["sms_consent_source"],
                          ride_contact=ride_contact_of(row)),
        producer=PRODUCER, clinic_id=who.clinic_id, patient_id=row["id"])])
    return row


async def get_patient(conn: asyncpg.Connection, clinic_id: UUID, patient_id: UUID,
                      for_update: bool = False) -> asyncpg.Record:
    row = await conn.fetchrow(Q.get_patient_for_update if for_update else Q.get_patient,
                              patient_id, clinic_id)
    if row is None:
        raise NotFound("unknown patient", field="patient_id")
    return row


async def session_type(conn: asyncpg.Connection, clinic_id: UUID, code: str) -> asyncpg.Record:
    row = await conn.fetchrow(Q.session_type, clinic_id, code)
    if row is None:
        raise Invalid(f"unknown session type {code!r}", field="session_type")
    return row
