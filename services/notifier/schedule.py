"""When each text about an appointment should go out: pure functions, no I/O.

Due times are computed in the site's time zone (so DST is handled by `zoneinfo`) and
returned in UTC. Every text has a validity window: one whose moment has passed is sent now
if still useful, skipped if not; none is ever due inside quiet hours.

Quiet hours never change what a text says: each kind of text says where they may move it
(`MOVES`). A text whose words name a day ("today", "tomorrow") never leaves that local day:
it moves within it, or it is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Appointment:
    starts_at: datetime
    ends_at: datetime
    timezone: str
    is_dosing: bool
    has_ride_contact: bool = False
    mode: str = "clinic"
    """clinic, phone, video or home (a home session needs no ride, its support person is
    texted)."""
    has_support: bool = False


@dataclass(frozen=True)
class PlannedText:
    kind: str
    due_at: datetime
    valid_until: datetime
    skipped: bool = False


@dataclass(frozen=True)
class Moves:
    """Where quiet hours may move a text of one kind."""

    earlier: bool
    """It may go before its due time (the latest allowed moment before it, if that has not
    passed); else, and when it may not, it waits for the first allowed moment after it."""
    day: Literal["appointment", "eve", "due"] | None
    """The local day its words name, which it never leaves: the appointment's ("today"), the
    day before it ("tomorrow"), or the day it falls due (it counts days from when it is
    read); None: it quotes a date, or names none, so it may go on another day."""
    why: str


MOVES: dict[str, Moves] = {
    "confirmation": Moves(False, None, "quotes the date; due when booked, so it can only wait"),
    "prep": Moves(
        True, None, "quotes the date; earlier leaves more time to prepare and find a ride"
    ),
    "ride_reminder": Moves(True, None, "quotes the date; earlier leaves more time to find a ride"),
    "fasting_reminder": Moves(True, "eve", "says 'tomorrow': only on the day before"),
    "day_of": Moves(True, "appointment", "says 'today': only on the appointment's day"),
    "pickup": Moves(True, "appointment", "tells the driver 'today': only on the appointment's day"),
    "support": Moves(True, None, "quotes the date; earlier leaves the support person more time"),
    "waitlist_offer": Moves(
        False, None, "quotes the date; the slot opened now, so it can only wait"
    ),
    "waitlist_taken": Moves(False, None, "quotes the date; due when the slot is taken"),
    "missed": Moves(False, None, "quotes the missed appointment's date; due after it"),
    "session_due": Moves(False, None, "names no day; due when the plan says so"),
    "follow_up_due": Moves(
        False, "due", "says 'within the next 2 days', counted from when it is read"
    ),
}
"""Every kind of text and where quiet hours may move it (the README's table)."""
LATER = Moves(False, None, "a kind this table does not know: it only waits")


@dataclass(frozen=True)
class QuietHours:
    """Texts may go out from `end` to `start` o'clock, local time (default 08:00-21:00)."""

    start: int = 21
    end: int = 8

    def allowed(self, local: datetime) -> bool:
        return self.end <= local.hour < self.start

    def place(self, due: datetime, tz: ZoneInfo, not_before: datetime, *, earlier: bool = True,
              day: date | None = None) -> datetime | None:
        """When a text due at `due` goes out: then, if texts may go out then; else the latest
        allowed moment before it if `earlier` and that is not before `not_before`; else the
        first allowed moment after it. With `day` (the local day its words name) never
        outside that day: a text due before it waits for it, and None when no allowed moment
        of it is left."""
        local = due.astimezone(tz)
        if (day is None or local.date() == day) and self.allowed(local):
            return due
        if day is not None:
            first, last = _at(day, 0, tz).astimezone(UTC), _at(day, 24, tz).astimezone(UTC)
            if due >= last:
                return None
            if due < first:
                due, local = first, first.astimezone(tz)
                if self.allowed(local):
                    return due
        quiet_day = local.date() if local.hour >= self.start else local.date() - timedelta(days=1)
        before = (_at(quiet_day, self.start, tz) - timedelta(minutes=1)).astimezone(UTC)
        if earlier and before >= not_before and (day is None or before >= first):
            return before
        after = _at(quiet_day + timedelta(days=1), self.end, tz).astimezone(UTC)
        return after if day is None or after < last else None


def _at(day: date, hour: int, tz: ZoneInfo) -> datetime:
    """`hour` o'clock on `day` in `tz` (24 is the next day's midnight)."""
    return datetime.combine(day + timedelta(days=hour // 24), time(hour % 24), tz)


def named_day(kind: str, tz: ZoneInfo, starts_at: datetime | None, due: datetime) -> date | None:
    """The local day the words of a text of `kind` name (see `MOVES`), or None if none:
    `starts_at` is its appointment's start, `due` when it (first) fell due."""
    bound = MOVES.get(kind, LATER).day
    if bound is None:
        return None
    if bound == "due" or starts_at is None:
        return due.astimezone(tz).date()
    day = starts_at.astimezone(tz).date()
    return day - timedelta(days=1) if bound == "eve" else day


def move(kind: str, due: datetime, tz: ZoneInfo, quiet: QuietHours, *, not_before: datetime,
         starts_at: datetime | None = None, planned: datetime | None = None) -> datetime | None:
    """When a text of `kind` due at `due` may go out, by its kind's rule (`MOVES`); None if
    its day leaves no allowed moment (it is skipped). `starts_at`: its appointment's start;
    `planned`: when it first fell due (default `due`)."""
    rule = MOVES.get(kind, LATER)
    day = named_day(kind, tz, starts_at, planned or due) if rule.day else None
    return quiet.place(due, tz, not_before, earlier=rule.earlier, day=day)


def plan_texts(
    appt: Appointment, now: datetime, quiet: QuietHours = QuietHours()
) -> list[PlannedText]:
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
            # says "tomorrow": only ever on the day before
            ("fasting_reminder", evening_before.astimezone(UTC),
             min(day_starts.astimezone(UTC), start - timedelta(hours=6))),
        ]
        if appt.mode == "home":  # no ride home: the support person is there, told by text
            if appt.has_support:
                wanted.append(("support", start - timedelta(hours=48), start - timedelta(hours=1)))
        else:
            # only goes out if the ride is still not arranged by then
            wanted.append(("ride_reminder", start - timedelta(hours=48),
                           start - timedelta(hours=12)))
            if appt.has_ride_contact:  # tell the driver when to come, near the end of recovery
                wanted.append(("pickup", appt.ends_at - timedelta(minutes=30),
                               appt.ends_at + timedelta(minutes=30)))
    planned = []
    for kind, due, valid_until in wanted:
        due = max(due, now)
        moved = move(kind, due, tz, quiet, not_before=now, starts_at=start)
        if moved is None:  # its day has no allowed moment left
            planned.append(PlannedText(kind, due, valid_until, skipped=True))
        else:
            planned.append(PlannedText(kind, moved, valid_until, skipped=moved > valid_until))
    return sorted(planned, key=lambda p: p.due_at)
