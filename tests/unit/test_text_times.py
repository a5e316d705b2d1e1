"""The dates and times texts quote: in the zone given, in the patient's language, formatted
once per day and per minute of the day (the same wall time reads the same in every zone)."""

from datetime import UTC, datetime

from services.notifier.templates import local_times


def test_a_time_reads_as_the_wall_clock_of_its_zone_on_either_side_of_a_dst_change():
    # Vancouver went from UTC-8 to UTC-7 on Sunday March 8, 2026, at 02:00
    assert local_times(datetime(2026, 3, 7, 17, 30, tzinfo=UTC), None, "America/Vancouver",
                       "en") == ("Sat Mar 7", "9:30 AM", "9:30 AM")
    assert local_times(datetime(2026, 3, 8, 17, 30, tzinfo=UTC),
                       datetime(2026, 3, 8, 19, 0, tzinfo=UTC), "America/Vancouver",
                       "en") == ("Sun Mar 8", "10:30 AM", "12:00 PM")


def test_the_same_moment_reads_in_each_zone_and_language_of_its_own():
    moment = datetime(2026, 3, 8, 17, 30, tzinfo=UTC)
    assert local_times(moment, None, "America/Toronto", "fr") == ("dim. 8 mars", "13 h 30",
                                                                  "13 h 30")
    assert local_times(moment, None, "America/Halifax", "es") == ("dom 8 de mar", "2:30 p.m.",
                                                                  "2:30 p.m.")


def test_an_evening_time_past_midnight_utc_keeps_its_local_day():
    assert local_times(datetime(2026, 3, 9, 0, 30, tzinfo=UTC), None, "America/Vancouver",
                       "fr") == ("dim. 8 mars", "17 h 30", "17 h 30")
