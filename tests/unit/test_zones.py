"""The project reads time zone rules from its pinned tzdata package, not the machine's."""

from __future__ import annotations

import gc
import zoneinfo
from datetime import UTC, datetime

import shared  # noqa: F401  (importing it sets the rules' source)
from shared.zones import held_zones


def test_the_project_reads_zones_from_the_tzdata_package_only():
    assert zoneinfo.TZPATH == ()


def test_vancouver_keeps_utc_minus_7_in_december_2026_and_los_angeles_falls_back():
    # British Columbia kept daylight time from 2026 (tzdata 2026); Debian 12's tzdata 2025b
    # would still put Vancouver at UTC-8 here, an hour off every winter appointment
    ten = datetime(2026, 12, 3, 10, 0)
    assert ten.replace(tzinfo=zoneinfo.ZoneInfo("America/Vancouver")).astimezone(UTC) == \
        datetime(2026, 12, 3, 17, 0, tzinfo=UTC)
    assert ten.replace(tzinfo=zoneinfo.ZoneInfo("America/Los_Angeles")).astimezone(UTC) == \
        datetime(2026, 12, 3, 18, 0, tzinfo=UTC)


def test_once_held_every_allowed_zone_is_the_same_object_however_many_are_used_between():
    held = held_zones()
    assert len(held) == 59 and held["America/Regina"].key == "America/Regina"
    for name in ["America/Vancouver", "America/Edmonton", "America/Winnipeg", "America/Toronto",
                 "America/Halifax", "America/St_Johns", "America/Los_Angeles", "America/Denver",
                 "America/Phoenix", "America/Chicago", "America/New_York", "Pacific/Honolulu"]:
        zoneinfo.ZoneInfo(name)  # more than the 8 ZoneInfo keeps by itself
    gc.collect()
    assert zoneinfo.ZoneInfo("America/Regina") is held["America/Regina"]
