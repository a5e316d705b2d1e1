"""When texts fall due: the site's time zone, DST, quiet hours, late bookings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.notifier.policy import KINDS
from services.notifier.schedule import MOVES, Appointment, QuietHours, plan_texts


def local(tz: str, *args) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(tz))


def by_kind(planned):
    return {p.kind: p for p in planned}


def appointment(start: datetime, dosing: bool = True) -> Appointment:
    return Appointment(start.astimezone(UTC), start.astimezone(UTC) + timedelta(minutes=90),
                       str(start.tzinfo), dosing)


def test_reminders_keep_their_local_time_across_the_spring_dst_change_in_new_york():
    start = local("America/New_York", 2026, 3, 9, 10, 0)  # the Monday after the change
    now = local("America/New_York", 2026, 3, 1, 12, 0).astimezone(UTC)
    texts = by_kind(plan_texts(appointment(start), now))
    evening = texts["fasting_reminder"].due_at.astimezone(ZoneInfo("America/New_York"))
    assert (evening.hour, evening.minute, evening.day) == (18, 0, 8)
    assert texts["prep"].due_at == start.astimezone(UTC) - timedelta(hours=72)
    assert texts["day_of"].due_at.astimezone(ZoneInfo("America/New_York")).hour == 8


def test_st_thomas_has_no_dst_so_its_utc_offset_never_moves():
    for month in (1, 7):
        start = local("America/St_Thomas", 2026, month, 20, 13, 0)
        now = start.astimezone(UTC) - timedelta(days=10)
        day_of = by_kind(plan_texts(appointment(start), now))["day_of"].due_at
        assert day_of.hour == 15  # 11:00 at UTC-4, all year


def test_a_see_you_today_text_for_08_15_is_skipped_not_sent_the_evening_before():
    start = local("America/Vancouver", 2026, 6, 10, 8, 15)  # day_of would be 06:15
    now = start.astimezone(UTC) - timedelta(days=10)
    day_of = by_kind(plan_texts(appointment(start, dosing=False), now))["day_of"]
    assert day_of.skipped, "08:00 is past its window (07:45); the evening before says 'today'"
    assert day_of.due_at.astimezone(ZoneInfo("America/Vancouver")).day == 10


def test_a_see_you_today_text_in_the_morning_quiet_hours_waits_for_08_00_the_same_day():
    start = local("America/Vancouver", 2026, 6, 10, 8, 30)  # day_of would be 06:30
    now = start.astimezone(UTC) - timedelta(days=10)
    day_of = by_kind(plan_texts(appointment(start, dosing=False), now))["day_of"]
    assert day_of.due_at == local("America/Vancouver", 2026, 6, 10, 8, 0)
    assert not day_of.skipped


def at_site(tz: str, *when) -> datetime:
    return local(tz, *when).astimezone(UTC)


def confirmation_booked_at(now_local: datetime, quiet: QuietHours) -> datetime:
    """When the confirmation of a session booked at `now_local` (a week ahead) goes out, in
    the site's local time."""
    start = now_local + timedelta(days=7)
    texts = by_kind(plan_texts(appointment(start), now_local.astimezone(UTC), quiet))
    return texts["confirmation"].due_at.astimezone(now_local.tzinfo)


@pytest.mark.parametrize("tz, quiet, sent_now, held", [
    # the default hours: 20:59 allowed, 21:00 not, 07:59 not, 08:00 allowed
    ("America/Vancouver", QuietHours(21, 8), [(20, 59), (8, 0)],
     [((21, 0), (11, 8, 0)), ((7, 59), (10, 8, 0))]),
    # a site open 09-19: 18:59 allowed, 19:00 not, 08:59 not, 09:00 allowed
    ("America/New_York", QuietHours(19, 9), [(18, 59), (9, 0)],
     [((19, 0), (11, 9, 0)), ((8, 59), (10, 9, 0))]),
])
def test_quiet_hours_boundaries_hold_to_the_minute(tz, quiet, sent_now, held):
    for h, m in sent_now:  # booked on 2026-06-10 at h:m: the confirmation goes at once
        assert confirmation_booked_at(local(tz, 2026, 6, 10, h, m), quiet) == local(tz, 2026, 6, 10, h, m)
    for (h, m), (day, h2, m2) in held:
        assert confirmation_booked_at(local(tz, 2026, 6, 10, h, m), quiet) == local(tz, 2026, 6, day, h2, m2)


def test_a_day_bound_text_moves_only_within_its_day_earlier_or_later_or_is_skipped():
    tz, quiet = "America/New_York", QuietHours(19, 9)  # a site open 09-19
    now = at_site(tz, 2026, 6, 1, 12, 0)
    evening = by_kind(plan_texts(appointment(local(tz, 2026, 6, 10, 21, 30)), now, quiet))
    # due 19:30 (2 h before): the latest allowed moment that same day
    assert evening["day_of"].due_at == at_site(tz, 2026, 6, 10, 18, 59)
    assert evening["fasting_reminder"].due_at == at_site(tz, 2026, 6, 9, 18, 0)
    closes_at_17 = by_kind(plan_texts(appointment(local(tz, 2026, 6, 10, 21, 30)), now,
                                      QuietHours(17, 9)))
    # due 18:00 the day before, in quiet hours: earlier that day, so still "tomorrow"
    assert closes_at_17["fasting_reminder"].due_at == at_site(tz, 2026, 6, 9, 16, 59)
    assert evening["prep"].due_at == at_site(tz, 2026, 6, 7, 18, 59), "72 h before, 21:30: earlier"
    morning = by_kind(plan_texts(appointment(local(tz, 2026, 6, 10, 9, 45)), now, quiet))
    assert morning["day_of"].due_at == at_site(tz, 2026, 6, 10, 9, 0), "09:00 the same day"
    early_prep = by_kind(plan_texts(appointment(local(tz, 2026, 6, 10, 8, 30)), now, quiet))
    assert early_prep["prep"].due_at == at_site(tz, 2026, 6, 6, 18, 59), "the evening before"
    early = by_kind(plan_texts(appointment(local(tz, 2026, 6, 10, 9, 15)), now, quiet))
    assert early["day_of"].skipped, "09:00 is past its window (08:45): never the day before"


def test_a_pickup_text_after_hours_is_sent_earlier_that_day_never_the_next():
    tz, quiet = "America/Vancouver", QuietHours(21, 8)
    start = local(tz, 2026, 6, 10, 19, 30)
    appt = Appointment(start.astimezone(UTC), at_site(tz, 2026, 6, 10, 21, 45), tz, True,
                       has_ride_contact=True)
    pickup = by_kind(plan_texts(appt, at_site(tz, 2026, 6, 1, 12, 0), quiet))["pickup"]
    assert pickup.due_at == at_site(tz, 2026, 6, 10, 20, 59)  # due 21:15: "ready at 21:45 today"


def test_every_kind_of_text_has_a_quiet_hours_rule_and_the_day_words_are_bound_to_their_day():
    assert set(MOVES) == KINDS
    assert {kind for kind, rule in MOVES.items() if rule.day} == {
        "day_of", "fasting_reminder", "pickup", "follow_up_due"}


def test_reminders_on_the_dst_days_in_los_angeles_keep_the_local_boundaries():
    tz, quiet = "America/Los_Angeles", QuietHours(21, 8)  # Vancouver's last change: March 2026
    for day in (8, 1):  # 2026-03-08 spring forward, 2026-11-01 fall back
        month = 3 if day == 8 else 11
        assert confirmation_booked_at(local(tz, 2026, month, day, 7, 59), quiet) == \
            local(tz, 2026, month, day, 8, 0)
        assert confirmation_booked_at(local(tz, 2026, month, day, 20, 59), quiet) == \
            local(tz, 2026, month, day, 20, 59)
        assert confirmation_booked_at(local(tz, 2026, month, day, 21, 0), quiet) == \
            local(tz, 2026, month, day + 1, 8, 0)
        start = local(tz, 2026, month, day, 8, 15)
        day_of = by_kind(plan_texts(appointment(start, dosing=False),
                                    at_site(tz, 2026, 2, 1, 12, 0), quiet))["day_of"]
        assert day_of.skipped, "no 'see you today' the evening before a DST day either"
        start = local(tz, 2026, month, day, 9, 30)
        day_of = by_kind(plan_texts(appointment(start, dosing=False),
                                    at_site(tz, 2026, 2, 1, 12, 0), quiet))["day_of"]
        assert day_of.due_at == local(tz, 2026, month, day, 8, 0)
    # 08:00 is 15:00 UTC after the spring change (PDT) and 16:00 UTC after the autumn one (PST)
    assert local(tz, 2026, 3, 8, 8, 0).astimezone(UTC).hour == 15
    assert local(tz, 2026, 11, 1, 8, 0).astimezone(UTC).hour == 16


def test_when_the_evening_before_has_passed_a_quiet_hours_text_waits_for_the_morning():
    quiet = QuietHours()
    tz = ZoneInfo("America/Toronto")
    now = local("America/Toronto", 2026, 6, 9, 23, 0).astimezone(UTC)
    moved = quiet.place(now, tz, not_before=now).astimezone(tz)
    assert (moved.day, moved.hour, moved.minute) == (10, 8, 0)


def test_a_late_booking_sends_what_is_still_useful_now_and_skips_the_rest():
    start = local("America/Vancouver", 2026, 6, 10, 14, 0)
    now = start.astimezone(UTC) - timedelta(hours=8)  # 06:00 local, quiet hours
    texts = by_kind(plan_texts(appointment(start), now))
    morning = local("America/Vancouver", 2026, 6, 10, 8, 0).astimezone(UTC)
    assert texts["confirmation"].due_at == morning and not texts["confirmation"].skipped
    assert texts["prep"].due_at == morning and not texts["prep"].skipped, "the ride question"
    assert texts["fasting_reminder"].skipped, "it says 'tomorrow'"
    assert texts["day_of"].due_at == start.astimezone(UTC) - timedelta(hours=2)


def test_no_planned_text_is_ever_due_in_quiet_hours():
    quiet = QuietHours()
    for tz in ("America/Vancouver", "America/New_York", "America/St_Thomas", "America/Regina"):
        for hour in range(0, 24, 3):
            start = local(tz, 2026, 11, 1, hour, 15)  # the autumn DST change in the US
            now = start.astimezone(UTC) - timedelta(days=4, hours=hour)
            for text in plan_texts(appointment(start), now):
                if not text.skipped:
                    assert quiet.allowed(text.due_at.astimezone(ZoneInfo(tz))), (tz, hour, text)


def test_quiet_hours_that_start_at_midnight_move_a_text_to_the_last_minute_of_the_day_before():
    miami = ZoneInfo("America/New_York")
    quiet = QuietHours(start=24, end=10)  # texts only from 10:00 to midnight
    due = datetime(2026, 6, 10, 9, 0, tzinfo=miami)
    moved = quiet.place(due, miami, not_before=due - timedelta(days=1)).astimezone(miami)
    assert moved == datetime(2026, 6, 9, 23, 59, tzinfo=miami)
    later = quiet.place(due, miami, due, earlier=False).astimezone(miami)
    assert later == datetime(2026, 6, 10, 10, tzinfo=miami)


def test_a_home_session_plans_prep_and_the_support_persons_text_and_no_ride_texts():
    now = datetime(2026, 6, 1, 17, 0, tzinfo=UTC)  # 10:00 in Vancouver
    start = datetime(2026, 6, 10, 17, 0, tzinfo=UTC)
    home = Appointment(start, start + timedelta(hours=2), "America/Vancouver", True,
                       has_ride_contact=True, mode="home", has_support=True)
    planned = {p.kind: p.due_at for p in plan_texts(home, now)}
    assert planned == {"confirmation": now, "prep": start - timedelta(hours=72),
                       "support": start - timedelta(hours=48),
                       "fasting_reminder": datetime(2026, 6, 10, 1, 0, tzinfo=UTC),
                       "day_of": start - timedelta(hours=2)}
    video = Appointment(start, start + timedelta(hours=1), "America/Vancouver", False,
                        mode="video")
    assert [p.kind for p in plan_texts(video, now)] == ["confirmation", "day_of"]
