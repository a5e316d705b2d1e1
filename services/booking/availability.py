"""Free-slot search: when a session type fits at a site, with a free room and a free
provider, within opening and working hours. One query for the busy times of the whole range,
then interval checks in memory, so a week answers in milliseconds."""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg

from services.booking.db import Q
from services.booking.localtime import to_utc
from shared.errors import Invalid

MAX_DAYS = 31


class Busy:
    """One resource's busy intervals (they never overlap: the exclusion constraints)."""

    def __init__(self) -> None:
        self.starts: list[datetime] = []
        self.ends: list[datetime] = []

    def add(self, start: datetime, end: datetime) -> None:
        self.starts.append(start)
        self.ends.append(end)

    def sort(self) -> None:
        pairs = sorted(zip(self.starts, self.ends))
        self.starts = [s for s, _ in pairs]
        self.ends = [e for _, e in pairs]

    def free(self, start: datetime, end: datetime) -> bool:
        i = bisect_left(self.starts, end)  # intervals starting before `end`
        return i == 0 or self.ends[i - 1] <= start


@dataclass(frozen=True)
class Slot:
    starts_at: datetime
    starts_at_local: str
    occupied_until_local: str
    room_id: UUID
    provider_id: UUID
    free_rooms: int
    free_providers: int


async def free_slots(conn: asyncpg.Connection, site: asyncpg.Record, stype: asyncpg.Record,
                     first_day: date, last_day: date, step_minutes: int = 15,
                     now: datetime | None = None) -> list[Slot]:
    if last_day < first_day or (last_day - first_day).days >= MAX_DAYS:
        raise Invalid(f"search at most {MAX_DAYS} days, from <= to", field="to")
    now = now or datetime.now(UTC)
    tz = ZoneInfo(site["timezone"])
    length = timedelta(minutes=stype["duration_minutes"] + stype["recovery_minutes"])
    range_start = datetime.combine(first_day, time(0), tz).astimezone(UTC)
    range_end = datetime.combine(last_day + timedelta(days=1), time(0), tz).astimezone(UTC)

    hours = defaultdict(list)
    for h in await conn.fetch(Q.site_hours, site["id"]):
        hours[h["weekday"]].append((h["opens"], h["closes"]))
    closed = set()
    for c in await conn.fetch(Q.closures_between, site["id"], first_day, last_day):
        d = c["first_day"]
        while d <= c["last_day"]:
            closed.add(d)
            d += timedelta(days=1)
    rooms = [r["id"] for r in await conn.fetch(Q.rooms_of_site, site["id"])]
    works = defaultdict(list)  # weekday -> [(provider, starts, ends)]
    for w in await conn.fetch(Q.provider_hours_at_site, site["id"]):
        works[w["weekday"]].append((w["provider_id"], w["starts"], w["ends"]))
    busy: dict[UUID, Busy] = defaultdict(Busy)
    for b in await conn.fetch(Q.busy_at_site, site["id"], range_start, range_end):
        busy[b["room_id"]].add(b["starts_at"], b["occupied_until"])
        busy[b["provider_id"]].add(b["starts_at"], b["occupied_until"])
    for intervals in busy.values():
        intervals.sort()
    no_busy = Busy()

    slots: list[Slot] = []
    day = first_day
    while day <= last_day:
        weekday = day.isoweekday()
        for opens, closes in ([] if day in closed else sorted(hours[weekday])):
            t = datetime.combine(day, opens)
            while t + length <= datetime.combine(day, closes):
                slot = _slot_at(t, tz, length, now, rooms, works[weekday], busy, no_busy)
                if slot is not None:
                    slots.append(slot)
                t += timedelta(minutes=step_minutes)
        day += timedelta(days=1)
    return slots


def _slot_at(t: datetime, tz, length, now, rooms, working, busy, no_busy) -> Slot | None:
    try:
        start = to_utc(t, str(tz))
    except Invalid:  # a wall-clock time that does not exist or is ambiguous (DST)
        return None
    end = start + length
    if start < now:
        return None
    local_end = end.astimezone(tz)
    if local_end.date() != t.date():
        return None
    free_rooms = [r for r in rooms if busy.get(r, no_busy).free(start, end)]
    free_providers = [p for p, s, e in dict.fromkeys(working)
                      if s <= t.time() and local_end.time() <= e and busy.get(p, no_busy).free(start, end)]
    if not free_rooms or not free_providers:
        return None
    return Slot(start, start.astimezone(tz).isoformat(), local_end.isoformat(), free_rooms[0],
                free_providers[0], len(free_rooms), len(free_providers))
