"""An induction series proposed from free slots (services/console/week.py `propose`; booking
books what staff accept, all or nothing)."""

from __future__ import annotations

from datetime import date, datetime

from services.console.week import propose

MONDAY_10 = datetime(2026, 12, 7, 10, 0)


def test_a_series_spreads_over_the_days_at_the_free_time_nearest_the_first_one():
    free = {date(2026, 12, 10): ["09:00", "10:30", "14:00"], date(2026, 12, 13): [],
            date(2026, 12, 14): ["10:15"]}
    assert propose(MONDAY_10, 3, 7, free) == ["2026-12-07T10:00", "2026-12-10T10:30",
                                              "2026-12-14T10:15"]


def test_a_session_with_no_free_day_within_two_days_of_its_target_is_left_out():
    free = {date(2026, 12, 20): ["10:00"]}
    assert propose(MONDAY_10, 3, 7, free) == ["2026-12-07T10:00"]


def test_one_session_is_just_the_time_asked_for():
    assert propose(MONDAY_10, 1, 21, {}) == ["2026-12-07T10:00"]
