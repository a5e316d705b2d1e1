"""When texts fall due: the site's time zone, DST, quiet hours, late bookings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from services.notifier.schedule import Appointment, QuietHours, plan_texts


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


def test_a_text_due_in_quiet_hours_moves_to_the_evening_before():
    start = local("America/Vancouver", 2026, 6, 10, 8, 30)  # day_of would be 06:30
    now = start.astimezone(UTC) - timedelta(days=10)
    day_of = by_kind(plan_texts(appointment(start, dosing=False), now))["day_of"]
    due = day_of.due_at.astimezone(ZoneInfo("America/Vancouver"))
    assert (due.day, due.hour, due.minute) == (9, 20, 59)
    assert not day_of.skipped


def test_when_the_evening_before_has_passed_a_quiet_hours_text_waits_for_the_morning():
    quiet = QuietHours()
    tz = ZoneInfo("America/Toronto")
    now = local("America/Toronto", 2026, 6, 9, 23, 0).astimezone(UTC)
    moved = quiet.clamp(now, tz, not_before=now).astimezone(tz)
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
