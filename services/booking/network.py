"""Setting up a clinic network: the clinic, its API keys, sites, rooms, providers, session
type overrides and patients. Plain functions on one connection, in the caller's transaction."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from services.booking import store
from services.booking.commands import (
    AddClinic,
    AddClosure,
    AddProvider,
    AddRoom,
    AddSite,
    IssueApiKey,
    OverrideSessionType,
    RegisterPatient,
    SetPrepItems,
    SetRemoteWays,
    UpdateProvider,
)
from services.booking.model import Closure, OpeningHours, Patient, Room, SessionType, Site, as_dict
from services.booking.online_rules import slug_of
from shared.auth import Principal, new_key
from shared.db import Connection
from shared.errors import Conflict, Invalid, NotFound
from shared.events.booking import ApiKeyIssued, ApiKeyRevoked, PatientRegistered
from shared.phones import mobile_e164
from shared.sms import (
    ADDRESS_MAX,
    CLINIC_NAME_MAX,
    JOIN_LINK_MAX,
    PREP_ITEMS_MAX,
    SITE_NAME_MAX,
    text_field_problem,
)


def normalise_mobile(
    raw: str, regions: tuple[str, ...] = ("US", "CA"), field: str = "phone"
) -> str:
    """The mobile number in E.164 if it is one of `regions` (the US with its territories),
    with no extension and not toll-free or premium-rate; else `Invalid` naming `field`."""
    try:
        return mobile_e164(raw, regions)
    except ValueError as exc:
        raise Invalid(f"{field} {exc}", field=field) from None


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


async def add_clinic(conn: Connection, cmd: AddClinic) -> dict[str, Any]:
    """A new clinic network and its first (admin) API key, shown only here."""
    check_names_for_texts(cmd.name, cmd.sms_name, CLINIC_NAME_MAX)
    clinic_id = uuid4()
    slug = cmd.slug or slug_of(cmd.name)
    if await store.slug_taken(conn, slug):
        if cmd.slug:
            raise Conflict("another network has this slug", field="slug")
        slug = f"{slug}-{str(clinic_id)[:8]}"
    clinic = await store.insert_clinic(conn, clinic_id, cmd.name, cmd.phone, cmd.sms_name, slug)
    key = await _issue(conn, clinic.id, "admin", "initial admin key")
    return {**as_dict(clinic), "api_key": key["api_key"]}


async def issue_api_key(
    conn: Connection, who: Principal, cmd: IssueApiKey
) -> dict[str, Any]:
    return await _issue(conn, who.clinic_id, cmd.role, cmd.label)


async def _issue(
    conn: Connection, clinic_id: UUID, role: str, label: str
) -> dict[str, Any]:
    """A new key (shown once); its hash goes to the other services as `ApiKeyIssued`."""
    key, key_hash = new_key()
    row = await store.insert_api_key(conn, uuid4(), clinic_id, key_hash, role, label)
    await store.emit(conn, [store.event(
        ApiKeyIssued(key_id=row.id, key_hash=key_hash, role=role, label=label), clinic_id, None)])
    return {**as_dict(row), "api_key": key}


async def revoke_api_key(conn: Connection, who: Principal, key_id: UUID) -> dict[str, Any]:
    if not await store.revoke_api_key(conn, who.clinic_id, key_id):
        raise NotFound("unknown or already revoked API key")
    await store.emit(conn, [store.event(ApiKeyRevoked(key_id=key_id), who.clinic_id, None)])
    return {"id": key_id, "revoked": True}


def _hours(hours: list[Any]) -> list[OpeningHours]:
    return [OpeningHours(h.weekday, h.opens, h.closes) for h in hours]


async def add_site(conn: Connection, who: Principal, cmd: AddSite) -> dict[str, Any]:
    check_names_for_texts(cmd.name, cmd.sms_name, SITE_NAME_MAX)
    check_for_texts("address", cmd.address, ADDRESS_MAX, address=True)
    site = await store.insert_site(conn, uuid4(), who.clinic_id, cmd.name, cmd.address,
                                   cmd.phone, cmd.timezone, cmd.default_language, cmd.region,
                                   cmd.sms_name)
    await store.insert_site_hours(conn, site.id, _hours(cmd.hours))
    return {**as_dict(site), "hours": [h.model_dump() for h in cmd.hours]}


async def get_site(conn: Connection, clinic_id: UUID, site_id: UUID) -> Site:
    """The network's site, or 404."""
    site = await store.get_site(conn, clinic_id, site_id)
    if site is None:
        raise NotFound("unknown site", field="site_id")
    return site


async def add_closure(conn: Connection, who: Principal, site_id: UUID,
                      cmd: AddClosure) -> Closure:
    await get_site(conn, who.clinic_id, site_id)
    return await store.insert_closure(conn, uuid4(), site_id, cmd.first_day, cmd.last_day,
                                      cmd.reason)


async def add_room(conn: Connection, who: Principal, cmd: AddRoom) -> Room:
    await get_site(conn, who.clinic_id, cmd.site_id)
    return await store.insert_room(conn, uuid4(), who.clinic_id, cmd.site_id, cmd.name)


async def add_provider(
    conn: Connection, who: Principal, cmd: AddProvider
) -> dict[str, Any]:
    site_ids = list({h.site_id for h in cmd.hours})
    if await store.sites_in_clinic(conn, who.clinic_id, site_ids) != len(site_ids):
        raise NotFound("unknown site in hours", field="hours")
    provider = await store.insert_provider(conn, uuid4(), who.clinic_id, cmd.name,
                                           cmd.consultations)
    await store.insert_provider_hours(conn, provider.id, [h.site_id for h in cmd.hours],
                                      _hours(cmd.hours))
    return {**as_dict(provider), "hours": [h.model_dump() for h in cmd.hours]}


async def update_provider(conn: Connection, who: Principal, provider_id: UUID,
                          cmd: UpdateProvider) -> dict[str, Any]:
    """Change whether a provider takes online consultations (404 on another network's)."""
    provider = await store.set_provider_consultations(conn, who.clinic_id, provider_id,
                                                      cmd.consultations)
    if provider is None:
        raise NotFound("unknown provider", field="provider_id")
    return as_dict(provider)


async def override_session_type(conn: Connection, who: Principal, code: str,
                                cmd: OverrideSessionType) -> SessionType:
    if await store.session_type(conn, who.clinic_id, code) is None:
        raise NotFound("unknown session type")
    await store.override_session_type(conn, who.clinic_id, code, cmd.duration_minutes,
                                      cmd.recovery_minutes, cmd.fasting_rule)
    return await session_type(conn, who.clinic_id, code)


async def register_patient(conn: Connection, who: Principal, cmd: RegisterPatient,
                           regions: tuple[str, ...] = ("US", "CA")) -> Patient:
    phone = normalise_mobile(cmd.phone, regions)
    now = datetime.now(UTC)
    ride = cmd.ride_contact
    ride_phone = normalise_mobile(ride.phone, regions, "ride_contact.phone") if ride else None
    patient = await store.insert_patient(
        conn, uuid4(), who.clinic_id, cmd.given_name, cmd.family_name, phone,
        cmd.language, cmd.sms_consent, now if cmd.sms_consent else None,
        cmd.sms_consent_source if cmd.sms_consent else None,
        ride.name if ride else None, ride_phone, bool(ride and ride.sms_consent),
        now if ride and ride.sms_consent else None, cmd.timezone)
    await store.emit(conn, [store.event(
        PatientRegistered(phone_e164=phone, language=cmd.language, sms_consent=cmd.sms_consent,
                          sms_consent_at=patient.sms_consent_at,
                          sms_consent_source=patient.sms_consent_source,
                          ride_contact=patient.ride_contact),
        who.clinic_id, patient.id)])
    return patient


async def get_patient(conn: Connection, clinic_id: UUID, patient_id: UUID) -> Patient:
    """The network's patient, or 404."""
    patient = await store.get_patient(conn, clinic_id, patient_id)
    if patient is None:
        raise NotFound("unknown patient", field="patient_id")
    return patient


async def session_type(conn: Connection, clinic_id: UUID, code: str) -> SessionType:
    """The network's session type, or 422 on `session_type`."""
    stype = await store.session_type(conn, clinic_id, code)
    if stype is None:
        raise Invalid("unknown session type", field="session_type")
    return stype


async def set_patient_timezone(conn: Connection, clinic_id: UUID, patient_id: UUID,
                               timezone: str | None) -> Patient:
    """The patient's own time zone (None: their site's); bookings from now on carry it."""
    patient = await store.set_patient_timezone(conn, clinic_id, patient_id, timezone)
    if patient is None:
        raise NotFound("unknown patient", field="patient_id")
    return patient


async def set_remote_ways(conn: Connection, who: Principal,
                          cmd: SetRemoteWays) -> dict[str, Any]:
    """The network's call-in number for phone visits and video link (`{code}`: the
    booking's code), checked as texts will carry them."""
    template = cmd.video_link_template
    if template is not None:
        if not template.startswith("https://"):
            raise Invalid("video_link_template must be an https:// link",
                          field="video_link_template")
        check_for_texts("video_link_template", template.replace("{code}", "0" * 10),
                        JOIN_LINK_MAX)
    return await store.set_remote_ways(conn, who.clinic_id, cmd.call_in_phone, template)


async def set_prep_items(conn: Connection, who: Principal, code: str,
                         cmd: SetPrepItems) -> SessionType:
    """A network's own words for what a session type's prep texts say to bring, in each
    language, checked as texts will carry them."""
    await session_type(conn, who.clinic_id, code)
    items = cmd.model_dump()
    for lang, text in items.items():
        check_for_texts(lang, text, PREP_ITEMS_MAX)
    await store.set_prep_items(conn, who.clinic_id, code, json.dumps(items))
    return await session_type(conn, who.clinic_id, code)
