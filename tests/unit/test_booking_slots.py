"""The free-slot search's arithmetic (services/booking/availability.py): start times within
opening hours, around closures and clock changes, and the first free room and provider."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

from services.booking.availability import Slot, candidates, closed_days, open_slots
from services.booking.model import Busy, Shift

PACIFIC = ZoneInfo("America/Los_Angeles")
"""A zone with clock changes (Vancouver keeps UTC-7 all year from 2026)."""
EARLY = datetime(2026, 1, 1, tzinfo=UTC)
HOUR, HALF = timedelta(hours=1), timedelta(minutes=30)
ROOM_A, ROOM_B, DOC = UUID(int=1), UUID(int=2), UUID(int=3)


def _starts(cands) -> list[str]:
    return [c.start.isoformat() for c in cands]


def test_start_times_step_through_opening_hours_and_end_by_closing():
    cands = candidates(date(2026, 12, 3), date(2026, 12, 3), {4: [(time(9), time(11))]}, set(),
                       PACIFIC, HOUR, HALF, EARLY)  # 2026-12-03 is a Thursday (4)
    assert _starts(cands) == ["2026-12-03T17:00:00+00:00", "2026-12-03T17:30:00+00:00",
                              "2026-12-03T18:00:00+00:00"]
    assert cands[0].local_end == datetime(2026, 12, 3, 10, 0)


def test_past_times_closed_days_and_days_without_hours_have_no_start_times():
    hours = {4: [(time(9), time(11))], 5: [(time(9), time(10))]}
    now = datetime(2026, 12, 3, 17, 15, tzinfo=UTC)  # 09:15 on the Thursday
    cands = candidates(date(2026, 12, 3), date(2026, 12, 6), hours, {date(2026, 12, 4)},
                       PACIFIC, HOUR, HALF, now)
    assert _starts(cands) == ["2026-12-03T17:30:00+00:00", "2026-12-03T18:00:00+00:00"]


def test_on_the_spring_forward_day_times_that_do_not_exist_are_left_out():
    # 2026-03-08, a Sunday: Los Angeles' clocks go from 02:00 to 03:00
    cands = candidates(date(2026, 3, 8), date(2026, 3, 8), {7: [(time(1), time(4))]}, set(),
                       PACIFIC, HOUR, HALF, EARLY)
    assert _starts(cands) == ["2026-03-08T09:00:00+00:00", "2026-03-08T09:30:00+00:00",
                              "2026-03-08T10:00:00+00:00"]
    assert [c.local_end.time() for c in cands] == [time(3), time(3, 30), time(4)]


def test_a_closure_closes_each_of_its_days():
    assert closed_days([(date(2026, 12, 24), date(2026, 12, 26)), (date(2027, 1, 1),) * 2]) == {
        date(2026, 12, 24), date(2026, 12, 25), date(2026, 12, 26), date(2027, 1, 1)}


def test_each_free_start_gets_the_first_free_room_and_a_provider_on_shift():
    cands = candidates(date(2026, 12, 3), date(2026, 12, 3), {4: [(time(9), time(11))]}, set(),
                       PACIFIC, HOUR, HALF, EARLY)
    nine = cands[0].start.timestamp()
    busy: list[Busy] = [(ROOM_A, UUID(int=7), nine, nine + 3600)]  # room A, 09:00-10:00
    slots = open_slots(cands, [ROOM_A, ROOM_B], [Shift(DOC, 4, time(9), time(11))], busy, HOUR)
    assert slots == [
        Slot(cands[0].start, "2026-12-03T09:00:00-08:00", "2026-12-03T10:00:00-08:00", ROOM_B, DOC),
        Slot(cands[1].start, "2026-12-03T09:30:00-08:00", "2026-12-03T10:30:00-08:00", ROOM_B, DOC),
        Slot(cands[2].start, "2026-12-03T10:00:00-08:00", "2026-12-03T11:00:00-08:00", ROOM_A, DOC)]


def test_no_slot_without_a_free_provider_on_shift():
    cands = candidates(date(2026, 12, 3), date(2026, 12, 3), {4: [(time(9), time(11))]}, set(),
                       PACIFIC, HOUR, HALF, EARLY)
    ten = cands[2].start.timestamp()
    busy: list[Busy] = [(None, DOC, ten, ten + 3600)]  # the provider elsewhere, 10:00-11:00
    slots = open_slots(cands, [ROOM_A], [Shift(DOC, 4, time(9), time(10, 30))], busy, HOUR)
    assert [s.starts_at_local for s in slots] == ["2026-12-03T09:00:00-08:00"]
    assert open_slots(cands, [ROOM_A], [], [], HOUR) == []
