"""Builders for test data shared by several test modules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from shared.events import Envelope
from shared.events.booking import SessionBooked


async def create_network(booking_http, *, language: str = "en", timezone: str = "America/Vancouver"):
    """A clinic with one site and one consenting patient, over the booking API."""
    clinic = (await booking_http.post("/clinics", json={"name": "Test Clinic",
                                                         "phone": "+1 604 555 0100"})).json()
    site = (await booking_http.post("/sites", json={
        "clinic_id": clinic["id"], "name": "Main", "address": "1 Main St", "phone": "+1 604 555 0101",
        "timezone": timezone})).json()
    patient = (await booking_http.post("/patients", json={
        "clinic_id": clinic["id"], "given_name": "Pat", "family_name": "Test",
        "phone": "604-555-0177", "language": language, "sms_consent": True})).json()
    return clinic, site, patient


def session_booked(*, patient_id: UUID | None = None, clinic_id: UUID | None = None,
                   starts_in: timedelta = timedelta(days=5), **overrides) -> Envelope:
    """A valid SessionBooked envelope, as the booking service would publish it."""
    starts = datetime.now(UTC).replace(microsecond=0) + starts_in
    payload = dict(
        booking_id=uuid4(), clinic_name="Test Clinic", clinic_phone="+1 604 555 0100",
        site_id=uuid4(), site_name="Main", site_address="1 Main St", site_phone="+1 604 555 0101",
        site_timezone="America/Vancouver", session_type="iv_infusion", is_dosing=True,
        fasting_rule="solids_6h_clear_liquids_2h", starts_at=starts,
        ends_at=starts + timedelta(minutes=90))
    payload.update(overrides)
    return Envelope.new(SessionBooked(**payload), producer="booking",
                        clinic_id=clinic_id or uuid4(), patient_id=patient_id or uuid4())
