"""A due text as the dispatcher picks it (`store.DueText`), for the rules' tests: a
confirmation of a dosing session in Vancouver, due now, to a patient who agreed to texts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from services.notifier.store import DueText

NOW = datetime(2026, 6, 10, 19, 0, tzinfo=UTC)
"""12:00 in Vancouver (PDT, UTC-7)."""
CLINIC = UUID("00000000-0000-0000-0000-00000000c001")
PATIENT = UUID("00000000-0000-0000-0000-00000000a001")
BOOKING = UUID("00000000-0000-0000-0000-00000000b001")
SITE = UUID("00000000-0000-0000-0000-00000000d001")

TEXT = DueText(
    id=7, kind="confirmation", clinic_id=CLINIC, patient_id=PATIENT, booking_id=BOOKING,
    booking_version=1, valid_until=NOW + timedelta(days=1), due_at=NOW, attempts=0,
    offer_id=None, offer_status=None, phone_e164="+16045550199", language="en",
    sms_consent=True, stop_notice_sent=True, number_problem=None, appointment_status="booked",
    appointment_version=1, clinic_name="Cedar", text_phone="+16045550100", site_name="Main",
    site_address="1 Main St", site_timezone="America/Vancouver", site_id=SITE,
    site_region="CA-BC", starts_at=datetime(2026, 6, 13, 17, 0, tzinfo=UTC),
    ends_at=datetime(2026, 6, 13, 18, 30, tzinfo=UTC), fasting_rule=None, ride_status=None,
    ride_contact_phone=None, number_opted_out=False, mode="clinic", join_link=None,
    prep_items=None, recipient_timezone=None, trace_context=None, daily_cap=None, weekly_cap=None,
    critical_past_caps=None, disabled_kinds=None, quiet_start=None, quiet_end=None,
    sent_today=0, sent_week=0)


def due_text(**changes: Any) -> DueText:
    """`TEXT` with `changes`."""
    return TEXT._replace(**changes)
