"""Where and when a session may go (services/booking/rules.py): its times, the site's rules as
the placement query found them, the room and provider picked, the ride home, the horizon."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from services.booking.model import Fit, Placement, SessionType, Span
from services.booking.rules import busy, check_contact, check_horizon, pick_again, place, span, start_field
from shared.errors import Conflict, Invalid, NotFound

NOW = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
IV = SessionType("iv_infusion", True, 45, 45, "solids_6h_clear_liquids_2h")
ROOM, OTHER_ROOM = UUID(int=1), UUID(int=2)
PROVIDER = UUID(int=3)
FITS = Fit(closed=False, open=True, room_known=True, provider_known=True, provider_works=True,
           free_room=OTHER_ROOM, free_provider=PROVIDER)


def test_a_session_holds_its_room_until_the_end_of_recovery_in_utc_and_site_time():
    # 10:00 in Vancouver, which keeps UTC-7 all year from 2026 (tzdata 2026; the machine's
    # older rules would say UTC-8 in December: the project reads the tzdata package's)
    starts = datetime(2026, 12, 3, 17, 0, tzinfo=UTC)
    when = span(starts, IV, "America/Vancouver", NOW)
    assert (when.ends_at, when.occupied_until) == (datetime(2026, 12, 3, 17, 45, tzinfo=UTC),
                                                   datetime(2026, 12, 3, 18, 30, tzinfo=UTC))
    assert when.starts_at == starts
    assert when.local_start.isoformat() == "2026-12-03T10:00:00-07:00"
    assert when.local_end.isoformat() == "2026-12-03T11:30:00-07:00"


def test_a_session_in_the_past_is_refused_on_its_field():
    with pytest.raises(Invalid) as refused:
        span(NOW - timedelta(minutes=1), IV, "America/Vancouver", NOW, "starts_at.2")
    assert refused.value.message == "a session cannot be booked in the past"
    assert refused.value.details == {"field": "starts_at.2"}


def test_a_session_whose_recovery_ends_the_next_local_day_is_refused():
    late = datetime(2026, 12, 4, 6, 0, tzinfo=UTC)  # 23:00 in Vancouver (UTC-7): recovery past midnight
    with pytest.raises(Invalid) as refused:
        span(late, IV, "America/Vancouver", NOW)
    assert refused.value.message == "the session (with recovery) must end the same day"


def _when() -> Span:
    return span(datetime(2026, 12, 3, 18, 0, tzinfo=UTC), IV, "America/Vancouver", NOW)


def test_the_room_and_provider_asked_for_are_kept_and_free_ones_picked_otherwise():
    when = _when()
    assert place(FITS, when, ROOM, None) == Placement(
        when.starts_at, when.ends_at, when.occupied_until, ROOM, PROVIDER)
    assert place(FITS, when, None, None).room_id == OTHER_ROOM


@pytest.mark.parametrize("fit, error, message, field", [
    (Fit(True, True, True, True, True, ROOM, PROVIDER), Invalid, "the site is closed that day",
     "starts_at"),
    (Fit(False, False, True, True, True, ROOM, PROVIDER), Invalid,
     "outside the site's opening hours (recovery included)", "starts_at"),
    (Fit(False, True, False, True, True, None, PROVIDER), NotFound, "unknown room at this site",
     "room_id"),
    (Fit(False, True, True, False, True, ROOM, None), NotFound, "unknown provider", "provider_id"),
    (Fit(False, True, True, True, False, ROOM, None), Invalid,
     "the provider does not work at this site then", "provider_id"),
])
def test_a_time_that_does_not_fit_the_site_is_refused_naming_what(fit, error, message, field):
    with pytest.raises(error) as refused:
        place(fit, _when(), None, None)
    assert refused.value.message == message and refused.value.details == {"field": field}


def test_no_free_room_or_provider_is_a_409_naming_the_resource():
    with pytest.raises(Conflict) as no_room:
        place(Fit(False, True, True, True, True, None, PROVIDER), _when(), None, None)
    assert no_room.value.details == {"conflicts_with": {"resource": "room"}}
    with pytest.raises(Conflict) as no_provider:
        place(Fit(False, True, True, True, True, ROOM, None), _when(), None, None)
    assert no_provider.value.message == "no provider is free then"


def test_a_taken_room_or_provider_is_picked_again_only_when_we_picked_it():
    other = UUID(int=9)
    room_taken = busy("room", other)
    assert room_taken.message == "the room is already booked then"
    assert room_taken.details == {"conflicts_with": {"resource": "room", "booking_id": other}}
    assert pick_again(room_taken, None, PROVIDER)
    assert not pick_again(room_taken, ROOM, None)
    assert pick_again(busy("provider", other), ROOM, None)
    assert not pick_again(busy("patient", other), None, None)


def test_a_dosing_session_needs_texts_to_the_patient_or_a_ride_contact():
    check_contact(True, True, None)
    check_contact(True, False, "+16045550199")
    check_contact(False, False, None)
    with pytest.raises(Invalid) as refused:
        check_contact(True, False, None)
    assert refused.value.details == {"field": "patient_id"}


def test_a_start_beyond_the_horizon_is_refused_on_its_own_field():
    check_horizon([NOW + timedelta(days=730)], 730, NOW)
    with pytest.raises(Invalid) as refused:
        check_horizon([NOW, datetime(2028, 12, 3, 9, 0)], 730, NOW, series=True)
    assert refused.value.message == "a session can be booked at most 730 days ahead"
    assert refused.value.details == {"field": "starts_at.1"}
    assert start_field(0, False) == "starts_at" and start_field(4, True) == "starts_at.4"
