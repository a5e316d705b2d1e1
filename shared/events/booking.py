"""Events published by the booking service on `booking.events`."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import AwareDatetime

from shared.events.base import Event
from shared.topics import BOOKING_EVENTS

Language = Literal["en", "fr", "es"]


class _BookingEvent(Event):
    topic: ClassVar[str] = BOOKING_EVENTS


class PatientRegistered(_BookingEvent):
    """A patient was added to a clinic network, with how to reach them."""

    phone_e164: str
    language: Language = "en"
    sms_consent: bool
    sms_consent_at: AwareDatetime | None = None
    sms_consent_source: str | None = None


class SessionBooked(_BookingEvent):
    """A session was booked. Carries everything consumers need to act without calling back."""

    booking_id: UUID
    version: int = 1
    series_id: UUID | None = None
    clinic_name: str
    clinic_phone: str
    site_id: UUID
    site_name: str
    site_address: str
    site_phone: str
    site_timezone: str
    session_type: str
    is_dosing: bool
    fasting_rule: str | None = None
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    """End of the session including recovery/monitoring: the earliest pickup time."""
    patient_language: Language = "en"

    def local_start(self) -> datetime:
        from zoneinfo import ZoneInfo

        return self.starts_at.astimezone(ZoneInfo(self.site_timezone))
