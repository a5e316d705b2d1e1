"""Free-slot search: when a session type fits at a site, with a free room and a free
provider, within opening and working hours. One query for the busy times of the whole range,
then bitmask arithmetic in memory (`candidates` and `open_slots`: plain functions)."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from typing import NamedTuple
from uuid import UUID
from zoneinfo import ZoneInfo

from services.booking import store
from services.booking.localtime import to_utc
from services.booking.model import Busy, SessionType, Shift, Site
from shared.db import Connection
from shared.errors import Invalid

MAX_DAYS = 31


@dataclass(frozen=True)
class Slot:
    starts_at: datetime
    starts_at_local: str
    occupied_until_local: str
    room_id: UUID | None
    """None for a visit by phone or video, or at home (it takes no room)."""
    provider_id: UUID


class Candidate(NamedTuple):
    """A start time to consider."""

    start: datetime          # UTC
    local_start: datetime    # site wall clock (naive)
    local_end: datetime      # site wall clock (naive), recovery included
    weekday: int
    start_offset: tzinfo     # the site's UTC offset at the start, and at the end
    end_offset: tzinfo


def _fixed_offset(day: date, tz: ZoneInfo) -> timezone | None:
    """The site's UTC offset on `day` if it stays the same all day (no DST change), else None."""
    first = _offset(datetime.combine(day, time(0), tz))
    last = _offset(datetime.combine(day, time(23, 59, 59), tz))
    return first if first == last else None


def _offset(moment: datetime) -> timezone:
    """The fixed UTC offset of an aware moment."""
    offset = moment.utcoffset()
    assert offset is not None, "aware datetimes only"
    return timezone(offset)


def candidates(first_day: date, last_day: date, hours: dict[int, list[tuple[time, time]]],
               closed: set[date], tz: ZoneInfo, length: timedelta, step: timedelta,
               now: datetime) -> list[Candidate]:
    """Every start time to consider, in time order: each step within opening hours, on open
    days, in the future, that exists exactly once on the wall clock and ends the same day.
    Days without a DST change (nearly all) need no time-zone lookup per candidate."""
    out: list[Candidate] = []
    day = first_day
    while day <= last_day:
        fixed = _fixed_offset(day, tz)
        for opens, closes in ([] if day in closed else sorted(hours.get(day.isoweekday(), []))):
            t, close = datetime.combine(day, opens), datetime.combine(day, closes)
            if fixed is not None:
                out += _plain_day(t, close, fixed, length, step, now)
            else:
                out += _changing_day(t, close, tz, length, step, now)
        day += timedelta(days=1)
    return out


def _plain_day(t: datetime, close: datetime, offset: timezone, length: timedelta,
               step: timedelta, now: datetime) -> list[Candidate]:
    """Start times from wall-clock `t` to `close` on a day with one UTC `offset` throughout."""
    out = []
    start, weekday = (t - offset.utcoffset(None)).replace(tzinfo=UTC), t.isoweekday()
    while t + length <= close:
        if start >= now:
            out.append(Candidate(start, t, t + length, weekday, offset, offset))
        t += step
        start += step
    return out


def _changing_day(t: datetime, close: datetime, tz: ZoneInfo, length: timedelta,
                  step: timedelta, now: datetime) -> list[Candidate]:
    """The same on a day when the clocks change: times that do not exist or exist twice are
    left out; a session may span the change."""
    out = []
    while t + length <= close:
        try:
            start = to_utc(t, str(tz))
        except Invalid:  # skipped or repeated by a DST change
            start = None
        if start is not None and start >= now:
            end = (start + length).astimezone(tz)
            if end.replace(tzinfo=None) <= close:
                out.append(Candidate(start, t, end.replace(tzinfo=None), t.isoweekday(),
                                      _offset(start.astimezone(tz)), _offset(end)))
        t += step
    return out


async def free_slots(conn: Connection, site: Site, stype: SessionType, first_day: date,
                     last_day: date, step_minutes: int = 15,
                     now: datetime | None = None, needs_room: bool = True) -> list[Slot]:
    """Free slots for a session type at a site between two local dates (inclusive), in time
    order: the site's hours, closures, rooms, providers' shifts and bookings read, then
    `candidates` and `open_slots`. A visit that takes no room (`needs_room` False: by phone
    or video, or at home) needs only a free provider."""
    if last_day < first_day or (last_day - first_day).days >= MAX_DAYS:
        raise Invalid(f"search at most {MAX_DAYS} days, from <= to", field="to")
    now = now or datetime.now(UTC)
    length = timedelta(minutes=stype.duration_minutes + stype.recovery_minutes)
    hours: dict[int, list[tuple[time, time]]] = defaultdict(list)
    for h in await store.site_hours(conn, site.id):
        hours[h.weekday].append((h.opens, h.closes))
    closed = closed_days(await store.closures_between(conn, site.id, first_day, last_day))
    cands = candidates(first_day, last_day, hours, closed, ZoneInfo(site.timezone), length,
                       timedelta(minutes=step_minutes), now)
    if not cands:
        return []
    rooms = [r.id for r in await store.rooms_of_site(conn, site.id)] if needs_room else [NO_ROOM]
    shifts = await store.provider_hours_at_site(conn, site.id)
    busy = await store.busy_at_site(conn, site.id, cands[0].start, cands[-1].start + length)
    slots = open_slots(cands, rooms, shifts, busy, length)
    return slots if needs_room else [replace(s, room_id=None) for s in slots]


NO_ROOM = UUID(int=0)
"""The room a visit that takes none "holds": never busy."""


def closed_days(closures: list[tuple[date, date]]) -> set[date]:
    """Every day of the closures (first and last day included)."""
    closed = set()
    for first, last in closures:
        day = first
        while day <= last:
            closed.add(day)
            day += timedelta(days=1)
    return closed


def open_slots(cands: list[Candidate], rooms: list[UUID], shifts: list[Shift], busy: list[Busy],
               length: timedelta) -> list[Slot]:
    """The candidates with a free room and a free provider, each with the first free room
    (in `rooms` order) and provider (by id). Each resource's busy times become a bitmask over
    the candidates (bit i set: candidate i overlaps a booking), so the search costs one pass
    over the bookings plus a few big-integer operations per room and provider."""
    everything = (1 << len(cands)) - 1
    taken = _busy_masks(cands, busy, length)
    room_free = [(r, everything & ~taken[r]) for r in rooms]
    working = _working_masks(cands, shifts)
    provider_free = sorted(((p, mask & ~taken[p]) for p, mask in working.items()),
                           key=lambda x: str(x[0]))
    any_room = any_provider = 0
    for _, mask in room_free:
        any_room |= mask
    for _, mask in provider_free:
        any_provider |= mask
    open_ = any_room & any_provider
    room_at = _first_owner(open_, room_free)
    provider_at = _first_owner(open_, provider_free)
    slots = []
    for i in sorted(room_at):
        c = cands[i]
        slots.append(Slot(c.start, c.local_start.replace(tzinfo=c.start_offset).isoformat(),
                          c.local_end.replace(tzinfo=c.end_offset).isoformat(),
                          room_at[i], provider_at[i]))
    return slots


def _working_masks(cands: list[Candidate], shifts: list[Shift]) -> dict[UUID, int]:
    """For each provider, the candidates (as bits) that their shifts cover."""
    by_weekday: dict[int, list[tuple[int, time, time]]] = defaultdict(list)
    for i, c in enumerate(cands):
        by_weekday[c.weekday].append((i, c.local_start.time(), c.local_end.time()))

    def covering(weekday: int, begin: time, end: time) -> int:
        mask = 0
        for i, starts, ends in by_weekday[weekday]:
            if begin <= starts and ends <= end:
                mask |= 1 << i
        return mask

    can_work: dict[UUID, int] = defaultdict(int)
    shapes: dict[tuple[int, time, time], int] = {}
    for w in shifts:
        shape = (w.weekday, w.starts, w.ends)
        if shape not in shapes:
            shapes[shape] = covering(*shape)
        can_work[w.provider_id] |= shapes[shape]
    return can_work


def _busy_masks(cands: list[Candidate], busy: list[Busy], length: timedelta) -> dict[UUID, int]:
    """For each room and provider, the candidates (as bits) its bookings overlap."""
    taken: dict[UUID, int] = defaultdict(int)
    span = length.total_seconds()
    epochs = [c.start.timestamp() for c in cands]
    for room_id, provider_id, starts, ends in busy:
        lo = bisect_right(epochs, starts - span)  # first candidate ending after the start
        hi = bisect_left(epochs, ends)            # first candidate starting at/after the end
        if hi > lo:
            bits = ((1 << (hi - lo)) - 1) << lo
            if room_id is not None:
                taken[room_id] |= bits
            taken[provider_id] |= bits
    return taken


def _bits(mask: int) -> Iterator[int]:
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def _first_owner(wanted: int, owners: list[tuple[UUID, int]]) -> dict[int, UUID]:
    """For each bit of `wanted`, the first owner (in list order) whose mask has it."""
    found: dict[int, UUID] = {}
    for owner, mask in owners:
        take = wanted & mask
        if take:
            for i in _bits(take):
                found[i] = owner
            wanted &= ~take
        if not wanted:
            break
    return found
