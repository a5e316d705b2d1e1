"""The load's clinic networks and its schedule: 20 sites in US and Canadian time zones,
rooms and providers enough for every booking, patients, and when each session starts.

Times are near the future so that texts fall due while the run lasts: the first sessions
start 2 h + `lead` after the run begins, so their day-of reminders (2 h before) fall due
`lead` to `lead + spread` into the run; confirmations and prep texts ("booked late") go at
once. Each room's sessions are 200 min apart (every session type used fits in that), one
patient per room and five rounds, so the schedule itself never conflicts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.notifier.schedule import QuietHours

ZONES = [  # (IANA zone, area code for fictional 555 numbers)
    ("America/St_Johns", "709"), ("America/Halifax", "902"), ("America/Toronto", "416"),
    ("America/New_York", "212"), ("America/Chicago", "312"), ("America/Winnipeg", "204"),
    ("America/Regina", "306"), ("America/Denver", "303"), ("America/Phoenix", "602"),
    ("America/Edmonton", "780"), ("America/Los_Angeles", "213"), ("America/Vancouver", "604"),
    ("America/Anchorage", "907"), ("Pacific/Honolulu", "808"),
]
SESSION_MIX = [("iv_infusion", 40), ("esketamine_nasal", 15), ("im_injection", 15),
               ("assessment", 15), ("integration", 15)]
OCCUPANCY = {"iv_infusion": 90, "esketamine_nasal": 150, "im_injection": 60, "assessment": 60,
             "integration": 60}
SPACING = timedelta(minutes=200)
ALL_DAY = [{"weekday": d, "opens": "00:00", "closes": "23:59"} for d in range(1, 8)]
NETWORKS = 2


@dataclass
class Site:
    index: int
    network: int
    timezone: str
    area: str
    id: str = ""
    rooms: list[str] = field(default_factory=list)
    providers: list[str] = field(default_factory=list)


@dataclass
class Slot:
    """One booking the driver will make."""

    site: Site
    room: int
    patient: int  # index into the patients list
    session_type: str
    starts_at: datetime
    no_show: bool = False


def sites(n: int = 20) -> list[Site]:
    return [Site(i, i % NETWORKS, *ZONES[i % len(ZONES)]) for i in range(n)]


def _fits_day(start: datetime, minutes: int, tz: ZoneInfo) -> datetime:
    """`start`, or the next local day's 00:01 if the session would run past midnight."""
    local = start.astimezone(tz)
    if (local + timedelta(minutes=minutes)).date() == local.date() and local.time() < time(23, 58):
        return start
    next_day = datetime.combine(local.date() + timedelta(days=1), time(0, 1), tz)
    return next_day.astimezone(UTC)


def schedule(site_list: list[Site], size: int, t0: datetime, *, lead: timedelta, spread: timedelta,
             no_show_share: float = 0.02, rng: random.Random) -> tuple[list[Slot], int, int]:
    """The bookings to make (no-show sessions first), the rooms each site needs and the
    number of patients."""
    per_site = -(-size // len(site_list))
    rooms = max(1, min(per_site, 100))
    rounds = -(-per_site // rooms)
    types, weights = zip(*SESSION_MIX, strict=True)
    slots: list[Slot] = []
    patients = 0
    made = 0
    for site in site_list:
        tz = ZoneInfo(site.timezone)
        for room in range(rooms):
            patient = patients
            patients += 1
            t = t0 + timedelta(hours=2) + lead + spread * (room / rooms)
            for _ in range(rounds):
                if made >= size:
                    break
                kind = rng.choices(types, weights)[0]
                t = _fits_day(t, OCCUPANCY[kind], tz)
                slots.append(Slot(site, room, patient, kind, t))
                made += 1
                t += SPACING
    # sessions to be missed: booked first, starting a minute later (the driver sets the
    # time), over long before the room's and the patient's first session
    no_shows = []
    for slot in rng.sample(slots, max(1, int(len(slots) * no_show_share))) if slots else []:
        start = t0 + timedelta(minutes=2)
        if _fits_day(start, 90, ZoneInfo(slot.site.timezone)) == start:
            no_shows.append(Slot(slot.site, slot.room, slot.patient, "assessment", start, no_show=True))
    return no_shows + slots, rooms, patients


def pick_quiet_hours(zones: list[str], now: datetime, horizon: timedelta,
                     quiet_share: float) -> QuietHours:
    """Quiet hours (a window at least 8 h long allowed) under which about `quiet_share` of
    the sites are in quiet hours for the whole `horizon`, the others allowed for all of
    it, and as few as possible switch during it. Independent of the hour it runs at."""
    best, best_cost = QuietHours(), float("inf")
    moments = [now + horizon * (k / 12) for k in range(13)]
    for start in range(1, 25):
        for end in range(0, start - 7):
            q = QuietHours(start, end)
            states = [{q.allowed(m.astimezone(ZoneInfo(z))) for m in moments} for z in zones]
            mixed = sum(1 for s in states if len(s) == 2)
            quiet = sum(1 for s in states if s == {False})
            cost = mixed * 3 + abs(quiet - quiet_share * len(zones)) + abs(start - 21) * 0.01
            if cost < best_cost:
                best, best_cost = q, cost
    return best
