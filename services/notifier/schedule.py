"""When each text about an appointment should go out: pure functions, no I/O.

Due times are computed in the site's time zone (so DST is handled by `zoneinfo`) and
returned in UTC. Every text has a validity window: one whose moment has passed is sent now
if still useful, skipped if not; none is ever due inside quiet hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Appointment:
    starts_at: datetime
    ends_at: datetime
    timezone: str
    is_dosing: bool
    has_ride_contact: bool = False


@dataclass(frozen=True)
class PlannedText:
    kind: str
    due_at: datetime
    valid_until: datetime
    skipped: bool = False


@dataclass(frozen=True)
class QuietHours:
    """Texts may go out from `end` to `start` o'clock, local time (default 08:00-21:00)."""

    start: int = 21
    end: int = 8

    def allowed(self, local: datetime) -> bool:
        return self.end <= local.hour < self.start

    def clamp(self, due: datetime, tz: ZoneInfo, not_before: datetime) -> datetime:
        """Move `due` out of quiet hours: to the latest allowed moment before it, or, when
        that is earlier than `not_before`, to the earliest allowed moment after it."""
        local = due.astimezone(tz)
        if self.allowed(local):
            return due
        day = local.date() if local.hour >= self.start else local.date() - timedelta(days=1)
        before = _at(day, self.start, tz) - timedelta(minutes=1)
        if before.astimezone(UTC) >= not_before:
            return before.astimezone(UTC)
        return _at(day + timedelta(days=1), self.end, tz).astimezone(UTC)

    def earliest(self, now: datetime, tz: ZoneInfo) -> datetime:
        """`now` if texts may go out now, else when quiet hours end."""
        return self.clamp(now, tz, not_before=now)


def _at(day: date, hour: int, tz: ZoneInfo) -> datetime:
    """`hour` o'clock on `day` in `tz` (24 is the next day's midnight)."""
    return datetime.combine(day + timedelta(days=hour // 24), time(hour % 24), tz)


def plan_texts(appt: Appointment, now: datetime, quiet: QuietHours = QuietHours()) -> list[PlannedText]:
    """The texts for a newly booked (or moved) appointment, with due times in UTC."""
    tz = ZoneInfo(appt.timezone)
    start = appt.starts_at
    local_start = start.astimezone(tz)
    wanted: list[tuple[str, datetime, datetime]] = [
        ("confirmation", now, start - timedelta(hours=1)),
        ("day_of", start - timedelta(hours=2), start - timedelta(minutes=30)),
    ]
    if appt.is_dosing:
        evening_before = datetime.combine(local_start.date() - timedelta(days=1), time(18), tz)
        day_starts = datetime.combine(local_start.date(), time(0), tz)
        wanted += [
            # prep carries the ride question: still worth sending on the day
            ("prep", start - timedelta(hours=72), start - timedelta(hours=2)),
            # only goes out if the ride is still not arranged by then
            ("ride_reminder", start - timedelta(hours=48), start - timedelta(hours=12)),
            # says "tomorrow": only ever on the day before
            ("fasting_reminder", evening_before.astimezone(UTC),
             min(day_starts.astimezone(UTC), start - timedelta(hours=6))),
        ]
        if appt.has_ride_contact:  # tell the driver when to come, near the end of recovery
            wanted.append(("pickup", appt.ends_at - timedelta(minutes=30),
                           appt.ends_at + timedelta(minutes=30)))
    planned = []
    for kind, due, valid_until in wanted:
        due = max(due, now)
        due = quiet.clamp(due, tz, not_before=now)
        planned.append(PlannedText(kind, due, valid_until, skipped=due > valid_until))
    return sorted(planned, key=lambda p: p.due_at)
