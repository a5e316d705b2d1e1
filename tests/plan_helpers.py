"""Booking events as the booking service would publish them, for driving the plans service."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from shared.auth import new_key
from shared.events import Envelope
from shared.events.booking import (
    ApiKeyIssued,
    PatientCheckedIn,
    PatientNoShow,
    PatientRegistered,
    SessionBooked,
    SessionCancelled,
    SessionCompleted,
    SessionRescheduled,
)

SITE = dict(clinic_name="Test Clinic", clinic_phone="+1 604 555 0100", site_name="Main",
            site_address="1 Main St", site_phone="+1 604 555 0101", site_timezone="America/Vancouver")


@dataclass
class Patient:
    """One patient's booking history, as a stream of booking events."""

    clinic_id: UUID = field(default_factory=uuid4)
    """A clinic network of its own unless given."""
    patient_id: UUID = field(default_factory=uuid4)
    site_id: UUID = field(default_factory=uuid4)
    versions: dict = field(default_factory=dict)
    bookings: dict = field(default_factory=dict)

    def env(self, payload) -> Envelope:
        return Envelope.new(payload, producer="booking", clinic_id=self.clinic_id,
                            patient_id=self.patient_id)

    def registered(self) -> Envelope:
        return self.env(PatientRegistered(phone_e164="+16045550177", sms_consent=True))

    def key(self, role: str = "admin") -> tuple[str, Envelope]:
        key, key_hash = new_key()
        return key, Envelope.new(ApiKeyIssued(key_id=uuid4(), key_hash=key_hash, role=role, label=role),
                                 producer="booking", clinic_id=self.clinic_id, patient_id=None)

    def book(self, session_type: str, starts_at: datetime, dosing: bool = True) -> tuple[UUID, Envelope]:
        bid = uuid4()
        self.versions[bid] = 1
        self.bookings[bid] = (session_type, dosing, starts_at)
        return bid, self.env(SessionBooked(
            booking_id=bid, version=1, site_id=self.site_id, session_type=session_type,
            is_dosing=dosing, starts_at=starts_at, ends_at=starts_at + timedelta(hours=2), **SITE))

    def _change(self, cls, bid: UUID, **extra) -> Envelope:
        self.versions[bid] += 1
        session_type, dosing, starts_at = self.bookings[bid]
        return self.env(cls(booking_id=bid, version=self.versions[bid], session_type=session_type,
                            is_dosing=dosing, site_id=self.site_id, starts_at=starts_at, **extra))

    def check_in(self, bid): return self._change(PatientCheckedIn, bid)
    def complete(self, bid): return self._change(SessionCompleted, bid)
    def no_show(self, bid): return self._change(PatientNoShow, bid)
    def cancel(self, bid): return self._change(SessionCancelled, bid, reason="r", cancelled_by="x")

    def reschedule(self, bid: UUID, starts_at: datetime) -> Envelope:
        self.versions[bid] += 1
        session_type, dosing, old = self.bookings[bid]
        self.bookings[bid] = (session_type, dosing, starts_at)
        return self.env(SessionRescheduled(
            booking_id=bid, version=self.versions[bid], site_id=self.site_id,
            session_type=session_type, is_dosing=dosing, starts_at=starts_at,
            ends_at=starts_at + timedelta(hours=2), previous_starts_at=old,
            previous_ends_at=old + timedelta(hours=2), **SITE))

    def attend(self, session_type: str, starts_at: datetime, dosing: bool = True) -> list[Envelope]:
        """Booked, checked in and completed."""
        bid, booked = self.book(session_type, starts_at, dosing)
        return [booked, self.check_in(bid), self.complete(bid)]


def days_ago(n: float) -> datetime:
    return datetime.now(UTC) - timedelta(days=n)
