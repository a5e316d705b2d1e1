"""What the booking service knows, as frozen dataclasses: the rows services/booking/store.py
reads (one class per shape a query returns, fields in the order of its columns) and the
values the rules in services/booking/rules.py decide on. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from uuid import UUID

from shared.events.booking import Language, RideContact

# re-exported: the service's rows use them
from shared.rows import as_dict as as_dict
from shared.rows import field_names as field_names


def ride_contact(name: str | None, phone: str | None, consent: bool) -> RideContact | None:
    """The ride contact texts may go to: only one who consented to be texted."""
    if consent and name and phone:  # name and phone are set together
        return RideContact(name=name, phone_e164=phone)
    return None


# --- the network --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Clinic:
    id: UUID
    name: str
    sms_name: str | None
    phone: str
    created_at: datetime
    slug: str | None


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: UUID
    clinic_id: UUID
    role: str
    label: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Site:
    id: UUID
    clinic_id: UUID
    name: str
    sms_name: str | None
    address: str
    phone: str
    timezone: str
    default_language: str
    region: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class OpeningHours:
    """A site's opening hours on one ISO weekday (site local time)."""

    weekday: int
    opens: time
    closes: time


@dataclass(frozen=True, slots=True)
class Closure:
    id: UUID
    site_id: UUID
    first_day: date
    last_day: date
    reason: str | None


@dataclass(frozen=True, slots=True)
class Room:
    id: UUID
    clinic_id: UUID
    site_id: UUID
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SiteRoom:
    """A room as a site lists it."""

    id: UUID
    site_id: UUID
    name: str


@dataclass(frozen=True, slots=True)
class Provider:
    id: UUID
    clinic_id: UUID
    name: str
    created_at: datetime
    consultations: bool


@dataclass(frozen=True, slots=True)
class Shift:
    """When a provider works at a site on one ISO weekday (site local time)."""

    provider_id: UUID
    weekday: int
    starts: time
    ends: time


@dataclass(frozen=True, slots=True)
class SessionType:
    """A session type as a network uses it (the defaults with its overrides)."""

    code: str
    is_dosing: bool
    duration_minutes: int
    recovery_minutes: int
    fasting_rule: str | None
    modes: tuple[str, ...] | list[str] = ("clinic",)
    """The modes it may be booked in (clinic, phone, video, home)."""
    route: str | None = None
    """How a dosing session's dose is given (esketamine, iv, im, oral, nasal)."""
    prep_items: str | None = None
    """What its prep texts say to bring, per language (JSON text: {"en": ..., ...})."""


@dataclass(frozen=True, slots=True)
class Patient:
    id: UUID
    clinic_id: UUID
    given_name: str
    family_name: str
    phone_e164: str
    language: Language
    sms_consent: bool
    sms_consent_at: datetime | None
    sms_consent_source: str | None
    ride_contact_name: str | None
    ride_contact_phone: str | None
    ride_contact_consent: bool
    ride_contact_consent_at: datetime | None
    created_at: datetime
    ride_contact_consent_source: str | None
    timezone: str | None = None
    """The patient's own time zone (None: their site's)."""

    @property
    def ride_contact(self) -> RideContact | None:
        return ride_contact(self.ride_contact_name, self.ride_contact_phone,
                            self.ride_contact_consent)


# --- bookings -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Context:
    """What the texts about a booking say besides its time: the clinic, the site, the
    patient's language and ride contact, the fasting rule of the session type."""

    clinic_name: str
    clinic_sms_name: str | None
    clinic_phone: str
    site_name: str
    site_sms_name: str | None
    site_address: str
    site_phone: str
    site_timezone: str
    site_region: str | None
    patient_language: Language
    ride_contact_name: str | None
    ride_contact_phone: str | None
    ride_contact_consent: bool
    fasting_rule: str | None
    patient_timezone: str | None = None
    call_in_phone: str | None = None
    """The network's number for phone visits."""
    video_link_template: str | None = None
    """The network's video link, `{code}` standing for the booking's code."""
    prep_text: str | None = None
    """What the session type's prep texts say to bring, in the patient's language."""

    @property
    def ride_contact(self) -> RideContact | None:
        return ride_contact(self.ride_contact_name, self.ride_contact_phone,
                            self.ride_contact_consent)


@dataclass(frozen=True, slots=True)
class Booking:
    """A booking (its row) and its context."""

    id: UUID
    clinic_id: UUID
    site_id: UUID
    room_id: UUID | None
    provider_id: UUID
    patient_id: UUID
    series_id: UUID | None
    session_type: str
    is_dosing: bool
    starts_at: datetime
    ends_at: datetime
    occupied_until: datetime
    status: str
    version: int
    confirmed_at: datetime | None
    ride_status: str
    ride_driver_name: str | None
    reschedule_requested_at: datetime | None
    cancel_reason: str | None
    cancelled_by: str | None
    created_at: datetime
    updated_at: datetime
    mode: str
    """clinic, phone, video (or home)"""
    source: str
    """staff, or online (the public booking page)"""
    join_link: str | None
    support_name: str | None
    support_phone: str | None
    support_consent: bool
    support_confirmed_at: datetime | None
    about: Context


@dataclass(frozen=True, slots=True)
class Visit:
    """How a session is attended: its mode (clinic, phone, video, home), the call-in number
    or video link asked for (None: the network's), and at home the support person."""

    mode: str = "clinic"
    join_link: str | None = None
    support_name: str | None = None
    support_phone: str | None = None
    support_consent: bool = False


CLINIC_VISIT = Visit()


@dataclass(frozen=True, slots=True)
class BookingContext:
    """What booking sessions for a patient at a site needs to know (one round trip).
    `about` is None when the site is unknown, `stype` when the session type is."""

    patient_id: UUID
    clinic_id: UUID
    sms_consent: bool
    site_id: UUID | None
    stype: SessionType | None
    about: Context | None


@dataclass(frozen=True, slots=True)
class Span:
    """A session's times: UTC start, end, end of recovery; local start and end of recovery."""

    starts_at: datetime
    ends_at: datetime
    occupied_until: datetime
    local_start: datetime
    local_end: datetime


@dataclass(frozen=True, slots=True)
class Placement:
    """Where and when a session would take place, checked against the site's rules."""

    starts_at: datetime
    ends_at: datetime
    occupied_until: datetime
    room_id: UUID | None
    provider_id: UUID


@dataclass(frozen=True, slots=True)
class Fit:
    """How a time fits a site's rules (the placement query), and the free room and
    provider when none was asked for."""

    closed: bool
    open: bool
    room_known: bool
    provider_known: bool
    provider_works: bool
    free_room: UUID | None
    free_provider: UUID | None


@dataclass(frozen=True, slots=True)
class Clash:
    """What is busy ("room", "provider" or "patient") and with which booking."""

    resource: str
    id: UUID


@dataclass(frozen=True, slots=True)
class Found:
    """A booking's status and start, when a lifecycle step found it in another status."""

    status: str
    starts_at: datetime


Busy = tuple[UUID | None, UUID, float, float]
"""A booking holding a room (None: at another site) and a provider, from and to (epoch
seconds). A plain tuple, not a dataclass: a free-slot search reads up to tens of thousands
of them, and making a dataclass (or named tuple) of each would cost more than the search."""


# --- the waitlist -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WaitlistEntry:
    id: UUID
    clinic_id: UUID
    patient_id: UUID
    site_id: UUID
    session_type: str
    window_start: datetime
    window_end: datetime
    status: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Waiting:
    """A patient waiting for a freed slot."""

    id: UUID
    patient_id: UUID
    language: Language


@dataclass(frozen=True, slots=True)
class Offer:
    """A freed slot offered to the patients waiting for one like it."""

    id: UUID
    site_id: UUID
    room_id: UUID
    provider_id: UUID
    session_type: str
    starts_at: datetime
    candidates: list[UUID]
    status: str


# --- Idempotency-Key ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The first request of an Idempotency-Key: its hash and the answer given."""

    request_hash: str
    status_code: int
    response: str


# --- staff --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewStaff:
    id: UUID
    clinic_id: UUID
    email: str
    name: str
    role: str
    language: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class StaffMember:
    id: UUID
    clinic_id: UUID
    email: str
    name: str
    role: str
    language: str
    disabled_at: datetime | None
    created_at: datetime
    created_by: str
    enrolled: bool
    has_totp: bool


@dataclass(frozen=True, slots=True)
class Credentials:
    """A person's account as sign-in and enrolment check it."""

    id: UUID
    clinic_id: UUID
    email: str
    name: str
    role: str
    language: str
    password_hash: str | None
    totp_secret: str | None
    pending_totp_secret: str | None
    disabled_at: datetime | None


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    private_key: bytes


@dataclass(frozen=True, slots=True)
class Failures:
    """Failed sign-ins within the window, for the account and for the address."""

    account: int
    address: int


@dataclass(frozen=True, slots=True)
class OpenSession:
    id: UUID
    expires_at: datetime
    staff_id: UUID
    clinic_id: UUID
    name: str
    role: str
    language: str


@dataclass(frozen=True, slots=True)
class EndedSession:
    id: UUID
    staff_id: UUID
    clinic_id: UUID
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class PatientMatch:
    """A patient found by a search (staff screens)."""

    id: UUID
    given_name: str
    family_name: str
    phone_e164: str
    language: str
    sms_consent: bool
    ride_contact_name: str | None
    created_at: datetime


# --- online consultation booking ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recent:
    """Codes asked for within the window, by the number, the address and the network."""

    number: int
    address: int
    network: int


@dataclass(frozen=True, slots=True)
class OnlineRequest:
    """A visitor's request to book a consultation, locked while its code is checked."""

    id: UUID
    clinic_id: UUID
    site_id: UUID
    provider_id: UUID
    starts_at: datetime
    mode: str
    given_name: str
    family_name: str
    phone_e164: str
    language: Language
    timezone: str
    consent_version: str
    consent_at: datetime
    code_hash: str
    tries: int
    expires_at: datetime
    booked: bool
