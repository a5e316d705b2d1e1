"""The booking rules as plain functions (no I/O): the lifecycle's transition table, when and
where a session may be placed, who may be booked for a dosing session, the ride home, the
booking horizon and `Idempotency-Key` matching. services/booking/bookings.py applies them with
the store; tests/unit/ checks them without a database."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

from services.booking.model import Fit, Found, Placement, SessionType, Span, StoredResponse
from shared.errors import Conflict, DomainError, Invalid, NotFound

# --- the lifecycle ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transition:
    """An action on a booking: the statuses it is allowed from, the status it leads to
    (None: the status stays), how a refusal names it ("a cancelled booking cannot be checked
    in"), and whether it waits for the session to start."""

    allowed: tuple[str, ...]
    to: str | None
    verb: str
    once_started: bool = False


# Statuses are FHIR R4's: booked, arrived (checked in), fulfilled (completed), cancelled,
# noshow. Each action is one `UPDATE ... WHERE status = ANY(allowed)` (services/booking/store.py).
TRANSITIONS: dict[str, Transition] = {
    "reschedule": Transition(("booked",), None, "rescheduled"),
    "cancel": Transition(("booked",), "cancelled", "cancelled"),
    "check_in": Transition(("booked",), "arrived", "checked in"),
    "complete": Transition(("arrived",), "fulfilled", "completed (check the patient in first)"),
    "no_show": Transition(("booked",), "noshow", "marked as a no-show", once_started=True),
    "ride": Transition(("booked", "arrived"), None, "given a ride"),
}


def not_allowed(action: str, status: str) -> Conflict:
    """The 409 for an action the booking's status does not allow."""
    return Conflict(f"a {status} booking cannot be {TRANSITIONS[action].verb}", status=status)


def check_allowed(action: str, status: str) -> None:
    """Refuse (409) an action the booking's status does not allow."""
    if status not in TRANSITIONS[action].allowed:
        raise not_allowed(action, status)


def started_by(action: str, now: datetime) -> datetime | None:
    """The time by which the session must have started for the action (None: any time)."""
    return now if TRANSITIONS[action].once_started else None


def refusal(action: str, found: Found | None, now: datetime) -> DomainError:
    """Why an action changed nothing, from what a read found after it: no booking (404), a
    session not started yet for an action that waits for it (409), or a status the action
    is not allowed from (409)."""
    if found is None:
        return NotFound("unknown booking")
    t = TRANSITIONS[action]
    if t.once_started and found.status in t.allowed and found.starts_at > now:
        return Conflict("the session has not started yet")
    return not_allowed(action, found.status)


def check_version(expected: int | None, version: int) -> None:
    """Refuse (409) a change made against another version of the booking than its own."""
    if expected is not None and expected != version:
        raise Conflict("the booking changed meanwhile", version=version)


def ride_driver(ride_status: str, driver_name: str | None) -> str | None:
    """The driver named for a ride home: only a confirmed ride has one."""
    return driver_name if ride_status == "confirmed" else None


# --- placing sessions ---------------------------------------------------------------------


def start_field(index: int, series: bool) -> str:
    """The field a start time is refused on: `starts_at`, or `starts_at.<i>` in a series."""
    return f"starts_at.{index}" if series else "starts_at"


def check_horizon(starts: list[datetime], days: int, now: datetime, series: bool = False) -> None:
    """Refuse (422) a start more than `days` ahead. A wall-clock time is read as UTC here:
    hours either way do not matter at that distance. (The past is refused by `span`.)"""
    latest = now + timedelta(days=days)
    for i, start in enumerate(starts):
        if (start if start.tzinfo else start.replace(tzinfo=UTC)) > latest:
            raise Invalid(f"a session can be booked at most {days} days ahead",
                          field=start_field(i, series))


def span(starts_at: datetime, stype: SessionType, timezone: str, now: datetime,
         field: str = "starts_at") -> Span:
    """The session's times, refused (422) in the past or when it (recovery included) would
    not end the same local day."""
    if starts_at < now:
        raise Invalid("a session cannot be booked in the past", field=field)
    ends_at = starts_at + timedelta(minutes=stype.duration_minutes)
    occupied = ends_at + timedelta(minutes=stype.recovery_minutes)
    tz = ZoneInfo(timezone)
    local_start, local_end = starts_at.astimezone(tz), occupied.astimezone(tz)
    if local_end.date() != local_start.date():
        raise Invalid("the session (with recovery) must end the same day", field=field)
    return Span(starts_at, ends_at, occupied, local_start, local_end)


def place(fit: Fit, when: Span, room_id: UUID | None, provider_id: UUID | None,
          field: str = "starts_at", needs_room: bool = True) -> Placement:
    """Where the session goes, from how the time fits the site's rules: the room and the
    provider asked for, else the free ones; the refusal naming what does not fit. A visit
    by phone or video or at home (`needs_room` False) takes no room and is held by the
    provider's working hours (and the site's closures), not the site's opening hours."""
    if fit.closed:
        raise Invalid("the site is closed that day", field=field)
    if needs_room and not fit.open:
        raise Invalid("outside the site's opening hours (recovery included)", field=field)
    if not fit.room_known:
        raise NotFound("unknown room at this site", field="room_id")
    if not fit.provider_known:
        raise NotFound("unknown provider", field="provider_id")
    if not fit.provider_works:
        raise Invalid("the provider does not work at this site then", field="provider_id")
    room = (room_id or fit.free_room) if needs_room else None
    provider = provider_id or fit.free_provider
    if room is None and needs_room:
        raise Conflict("no room is free then", conflicts_with={"resource": "room"})
    if provider is None:
        raise Conflict("no provider is free then", conflicts_with={"resource": "provider"})
    return Placement(when.starts_at, when.ends_at, when.occupied_until, room, provider)


def busy(resource: str, other: UUID | None) -> Conflict:
    """The 409 naming which of room, provider or patient is busy, and with which booking."""
    return Conflict(f"the {resource} is already booked then",
                    conflicts_with={"resource": resource, "booking_id": other})


def pick_again(conflict: Conflict, room_id: UUID | None, provider_id: UUID | None) -> bool:
    """Whether a conflict is with a room or provider we picked (none was asked for), so that
    another may be picked; one asked for, or the patient, stays a conflict."""
    resource = conflict.details["conflicts_with"]["resource"]
    return (resource == "room" and room_id is None) or \
        (resource == "provider" and provider_id is None)


def check_contact(is_dosing: bool, sms_consent: bool, ride_contact_phone: str | None) -> None:
    """A dosing session needs a way to arrange the ride home: texts to the patient or a ride
    contact."""
    if is_dosing and not sms_consent and not ride_contact_phone:
        raise Invalid("a dosing session needs a way to arrange the ride home: SMS consent or a "
                      "ride contact", field="patient_id")


# --- visit modes: in clinic, by phone or video, at home ------------------------------------

MODES = ("clinic", "phone", "video", "home")
NEVER_AT_HOME = {
    "esketamine": "esketamine may be given only in a REMS-certified healthcare setting, never "
                  "at home",
    "iv": "an IV session is given only in clinic, never at home",
    "im": "an IM session is given only in clinic, never at home",
}
"""Routes never given at home, whatever a session type allows, and why."""
JOIN_CODE_LENGTH = 10


def check_mode(stype: SessionType, mode: str, room_id: UUID | None, has_support: bool) -> None:
    """Refuse (422 on `mode`, `room_id` or `support_person`) a mode the session type does
    not allow: remote only where the type allows it (consultations, assessments,
    integration), dosing in clinic unless the type is dosed at home, never at home for
    esketamine (Spravato REMS), IV or IM; a room for a visit that takes none; a home
    session without a support person (or another with one)."""
    if mode == "home" and stype.route in NEVER_AT_HOME:
        raise Invalid(NEVER_AT_HOME[stype.route], field="mode")
    if mode not in stype.modes:
        raise Invalid(f"{stype.code} sessions may be booked only as "
                      f"{' or '.join(stype.modes)}", field="mode")
    if mode != "clinic" and room_id is not None:
        raise Invalid(f"a {mode} visit takes no room", field="room_id")
    if mode == "home" and not has_support:
        raise Invalid("a home session needs a support person present", field="support_person")
    if mode != "home" and has_support:
        raise Invalid("only a home session has a support person", field="support_person")


def join_code(booking_id: UUID) -> str:
    """A booking's short code in a video link (`{code}` in the network's template)."""
    return booking_id.hex[:JOIN_CODE_LENGTH]


def join_link(mode: str, given: str | None, call_in_phone: str | None,
              video_template: str | None, booking_id: UUID) -> str | None:
    """How the patient joins a remote visit: the link or number given for the booking, else
    the network's call-in number (phone) or video link (video, home); None in clinic, and
    for a phone visit with no number to call (the clinic calls the patient). Refused (422 on
    `join_link`) for a video or home visit without a link, or one given for a clinic visit."""
    if mode == "clinic":
        if given is not None:
            raise Invalid("a clinic visit has no call-in number or video link",
                          field="join_link")
        return None
    if given is not None:
        return given
    if mode == "phone":
        return call_in_phone  # None: the clinic calls the patient
    if video_template:
        return video_template.replace("{code}", join_code(booking_id))
    raise Invalid(f"a {mode} visit needs a video link: give join_link, or set the network's "
                  "(POST /clinic/remote-visits)", field="join_link")


# --- Idempotency-Key ----------------------------------------------------------------------

KEY_MAX_LENGTH = 200


def check_key(key: str) -> None:
    """Refuse (422) a key longer than 200 characters."""
    if len(key) > KEY_MAX_LENGTH:
        raise Invalid(f"Idempotency-Key is longer than {KEY_MAX_LENGTH} characters",
                      field="Idempotency-Key")


def request_digest(method: str, path: str, body: bytes) -> str:
    """What makes two requests the same request: method, path and body."""
    return hashlib.sha256(method.encode() + path.encode() + body).hexdigest()


def replay(stored: StoredResponse, digest: str) -> StoredResponse:
    """The stored answer to replay for a key used again, if by the same request; a key used
    for another request is refused (422)."""
    if stored.request_hash != digest:
        raise Invalid("this Idempotency-Key was used for a different request",
                      field="Idempotency-Key")
    return stored
