"""Events published by the booking service on `booking.events` (keyed by patient).

Every event about a booking carries what consumers need to act on it without calling back
into booking: the site's time zone and contact details, the session type and whether it is
a dosing session, the times, the patient's language and, if they consented, the ride contact.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict

from shared.events.base import Event, register_upcaster
from shared.topics import BOOKING_EVENTS

Language = Literal["en", "fr", "es"]


class _BookingEvent(Event):
    topic: ClassVar[str] = BOOKING_EVENTS


class ApiKeyIssued(_BookingEvent):
    """A clinic network's API key was issued (network-level: no patient). Only its hash."""

    key_id: UUID
    key_hash: str
    role: str
    label: str


class ApiKeyRevoked(_BookingEvent):
    """A clinic network's API key was revoked."""

    key_id: UUID


class RideContact(BaseModel):
    """Who drives the patient home; only sent when that person consented to texts."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    name: str
    phone_e164: str


class SupportPerson(RideContact):
    """Who is with the patient during a home session; only sent when they consented to
    texts."""


Mode = Literal["clinic", "phone", "video", "home"]


class PatientRegistered(_BookingEvent):
    """A patient was added to a clinic network, with how to reach them."""

    phone_e164: str
    language: Language = "en"
    sms_consent: bool
    sms_consent_at: AwareDatetime | None = None
    sms_consent_source: str | None = None
    ride_contact: RideContact | None = None


class PatientContactChanged(_BookingEvent):
    """A patient's phone, language, SMS consent or ride contact changed."""

    phone_e164: str
    language: Language = "en"
    sms_consent: bool
    ride_contact: RideContact | None = None


class _Appointment(_BookingEvent):
    """The snapshot of a booking that consumers keep."""

    booking_id: UUID
    version: int = 1
    series_id: UUID | None = None
    clinic_name: str
    clinic_sms_name: str | None = None
    """What texts call the clinic, if it set a short name for them (else clinic_name)."""
    clinic_phone: str
    site_id: UUID
    site_name: str
    site_sms_name: str | None = None
    """What texts call the site, if it set a short name for them (else site_name)."""
    site_address: str
    site_phone: str
    """The number texts about the appointment quote."""
    site_timezone: str
    site_region: str | None = None
    """The site's state or province (ISO 3166-2, e.g. US-FL); None if not known."""
    room_id: UUID | None = None
    provider_id: UUID | None = None
    session_type: str
    is_dosing: bool
    fasting_rule: str | None = None
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    """End of the session including recovery/monitoring: the earliest pickup time."""
    patient_language: Language = "en"
    ride_contact: RideContact | None = None
    mode: Mode = "clinic"
    """In clinic (site and room), by phone or video, or at home (supervised by video)."""
    join_link: str | None = None
    """A remote visit's call-in number or video link (texts carry it, never an address)."""
    patient_timezone: str | None = None
    """The patient's own time zone (None: the site's)."""
    support_person: SupportPerson | None = None
    """At home: who is with the patient, if they consented to texts."""
    prep_items: str | None = None
    """What the session type's prep text says to bring, in the patient's language."""

    def local_start(self) -> datetime:
        from zoneinfo import ZoneInfo

        return self.starts_at.astimezone(ZoneInfo(self.site_timezone))


class SessionBooked(_Appointment):
    """A session was booked."""


class SessionRescheduled(_Appointment):
    """A booked session moved (same booking id, higher version)."""

    previous_starts_at: AwareDatetime
    previous_ends_at: AwareDatetime


class _BookingChanged(_BookingEvent):
    booking_id: UUID
    version: int
    session_type: str
    is_dosing: bool
    site_id: UUID
    starts_at: AwareDatetime


class SessionCancelled(_BookingChanged):
    """A booked session was cancelled; its texts must not go out."""

    reason: str
    cancelled_by: str


class PatientCheckedIn(_BookingChanged):
    """The patient arrived for their session (FHIR: arrived)."""


class SessionCompleted(_BookingChanged):
    """The session took place (FHIR: fulfilled)."""


class PatientNoShow(_BookingChanged):
    """The patient did not come (FHIR: noshow)."""


class RideDetailsUpdated(_BookingEvent):
    """The ride home after a dosing session was requested or confirmed."""

    booking_id: UUID
    version: int
    ride_status: Literal["unknown", "requested", "confirmed"]
    driver_name: str | None = None


class OnlineCodeRequested(_BookingEvent):
    """A visitor of the public booking page asked for a code to verify their mobile number
    (network-level: no patient yet). The notifier texts it at once; booking keeps only its
    HMAC. Valid 10 minutes. The code travels sealed (`shared.sealed`, with the key booking
    and the notifier share): never in plain text in the event log. v2: `sealed_code`
    instead of v1's plain `code`."""

    schema_version: ClassVar[int] = 2
    request_id: UUID
    phone_e164: str
    sealed_code: str
    language: Language = "en"
    clinic_name: str
    clinic_sms_name: str | None = None
    expires_at: AwareDatetime


class WaitlistSlotOpened(_BookingEvent):
    """A slot opened that this (waiting) patient may take; the first to accept gets it."""

    offer_id: UUID
    clinic_name: str
    clinic_sms_name: str | None = None
    clinic_phone: str
    site_id: UUID
    site_name: str
    site_sms_name: str | None = None
    site_phone: str | None = None
    """The number the offer quotes (None in events from before it was carried: the clinic's)."""
    site_timezone: str
    site_region: str | None = None
    session_type: str
    starts_at: AwareDatetime
    patient_language: Language = "en"


class WaitlistSlotTaken(_BookingEvent):
    """A slot offered to this patient went to someone else."""

    offer_id: UUID


@register_upcaster("OnlineCodeRequested", 1)
def _code_sealed(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 carried the code in plain text: it is dropped (nothing can open an empty seal: the
    visitor asks for a new code)."""
    rest = {k: v for k, v in payload.items() if k != "code"}
    return {**rest, "sealed_code": ""}
