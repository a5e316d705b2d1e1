"""Booking's lifecycle (services/booking/rules.py): which action is allowed from which status,
where it leads, and what a refused action answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.booking.model import Found
from services.booking.rules import TRANSITIONS, check_allowed, check_version, refusal, ride_driver, started_by
from shared.errors import Conflict, NotFound

NOW = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)


def test_each_action_leads_from_the_fhir_statuses_it_allows_to_its_own():
    assert {a: (t.allowed, t.to) for a, t in TRANSITIONS.items()} == {
        "reschedule": (("booked",), None),
        "cancel": (("booked",), "cancelled"),
        "check_in": (("booked",), "arrived"),
        "complete": (("arrived",), "fulfilled"),
        "no_show": (("booked",), "noshow"),
        "ride": (("booked", "arrived"), None),
    }


@pytest.mark.parametrize("action, status, message", [
    ("cancel", "cancelled", "a cancelled booking cannot be cancelled"),
    ("check_in", "fulfilled", "a fulfilled booking cannot be checked in"),
    ("complete", "booked", "a booked booking cannot be completed (check the patient in first)"),
    ("no_show", "arrived", "a arrived booking cannot be marked as a no-show"),
    ("reschedule", "noshow", "a noshow booking cannot be rescheduled"),
    ("ride", "cancelled", "a cancelled booking cannot be given a ride"),
])
def test_an_action_its_status_does_not_allow_is_a_409_naming_the_status(action, status, message):
    with pytest.raises(Conflict) as refused:
        check_allowed(action, status)
    assert refused.value.message == message and refused.value.details == {"status": status}
    found = refusal(action, Found(status, NOW - timedelta(hours=1)), NOW)
    assert isinstance(found, Conflict)
    assert found.message == message and found.details == {"status": status}


def test_an_allowed_action_passes():
    check_allowed("ride", "arrived")
    check_allowed("reschedule", "booked")


def test_an_action_that_found_no_booking_is_a_404():
    found = refusal("check_in", None, NOW)
    assert isinstance(found, NotFound) and found.message == "unknown booking"
    assert found.status_code == 404


def test_a_no_show_waits_for_the_session_to_start():
    assert started_by("no_show", NOW) == NOW
    assert started_by("check_in", NOW) is None and started_by("cancel", NOW) is None
    early = refusal("no_show", Found("booked", NOW + timedelta(minutes=1)), NOW)
    assert isinstance(early, Conflict) and early.message == "the session has not started yet"
    assert early.details == {}


def test_a_change_made_against_another_version_is_a_409_with_the_current_one():
    check_version(None, 3)
    check_version(3, 3)
    with pytest.raises(Conflict) as refused:
        check_version(1, 2)
    assert refused.value.message == "the booking changed meanwhile"
    assert refused.value.details == {"version": 2}


def test_only_a_confirmed_ride_names_its_driver():
    assert ride_driver("confirmed", "Sam") == "Sam"
    assert ride_driver("requested", "Sam") is None
    assert ride_driver("unknown", None) is None
