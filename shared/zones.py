"""The time zones a site may be in: the IANA zones of the US, Canada and the US territories,
as tzdata's `zone.tab` lists them by country. Canonical names only: aliases such as
`US/Eastern` or `America/Montreal` are refused with the name to use instead in the docs
(`America/New_York`, `America/Toronto`), so every site names its zone one way.

Whose rules: Python reads time zones from the `tzdata` package the project pins and updates
(`use_packaged_rules`), never from the machine's, which can be years old (Debian 12 ships
2025b, where America/Vancouver still falls back to UTC-8 in November 2026; the 2026 releases
keep it at UTC-7). PostgreSQL works some local days out with its own rules (day sheets, the
notifier's caps): `disagreements` names the zones where the two differ, a problem in every
service's ops status."""

from __future__ import annotations

import logging
import time
import zoneinfo
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from shared.db import Queries

if TYPE_CHECKING:
    from shared.db import Connection
    from shared.ops_status import StatusReport

Q = Queries(Path(__file__).with_name("zones.sql"))
log = logging.getLogger(__name__)

COUNTRIES = frozenset({"US", "CA", "PR", "VI", "GU", "AS", "MP", "UM"})
"""ISO 3166 codes: the US and Canada, Puerto Rico, the US Virgin Islands, Guam, American
Samoa, the Northern Mariana Islands and the US Minor Outlying Islands."""
MAX_LENGTH = 64
"""Longer than any IANA name: checked before the name is looked up."""


@lru_cache(maxsize=1)
def allowed_zones() -> frozenset[str]:
    """The zone names `zone.tab` gives for `COUNTRIES` (read once, when first needed)."""
    table = files("tzdata").joinpath("zoneinfo", "zone.tab").read_text(encoding="utf-8")
    rows = (line.split("\t") for line in table.splitlines() if line and not line.startswith("#"))
    return frozenset(row[2] for row in rows if row[0] in COUNTRIES)


@lru_cache(maxsize=1)
def held_zones() -> dict[str, zoneinfo.ZoneInfo]:
    """Every allowed zone, loaded once and held for the life of the process (each service
    loads them at start-up). `ZoneInfo(name)` reuses a zone only while some object still
    holds it, and holds the 8 last used itself: a network with sites in more than 8 zones
    otherwise read a zone's file from the tzdata package again on most calls (~70 us each,
    against 0.1 us), wherever a local time is worked out."""
    return {name: zoneinfo.ZoneInfo(name) for name in sorted(allowed_zones())}


def check_zone(value: str) -> str:
    """`value` if it is an allowed zone, else `ValueError` (with an example, never the value)."""
    if len(value) > MAX_LENGTH or value not in allowed_zones():
        raise ValueError("not an IANA time zone of the US, Canada or a US territory by its "
                         "canonical name, such as America/Vancouver or America/Puerto_Rico "
                         "(aliases are not taken)")
    return value


def use_packaged_rules() -> None:
    """Make `zoneinfo` read the `tzdata` package's rules only (not the machine's), and forget
    any zone read before. Called when `shared` is first imported, so every service, tool and
    test of the project reads the same rules."""
    zoneinfo.reset_tzpath(to=[])
    zoneinfo.ZoneInfo.clear_cache()


CHECK_DAYS = 730
"""How far ahead the two sets of rules are compared (a sample every `CHECK_STEP_DAYS`)."""
CHECK_STEP_DAYS = 5


async def disagreements(conn: Connection, zones: list[str] | None = None,
                        now: datetime | None = None) -> list[str]:
    """The zones (all allowed ones by default) whose UTC offset PostgreSQL gives differently
    from Python at some instant of the next two years, or that PostgreSQL does not know."""
    zones = sorted(zones if zones is not None else allowed_zones())
    start = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    instants = [start + timedelta(days=d) for d in range(0, CHECK_DAYS, CHECK_STEP_DAYS)]
    rules = held_zones()
    seen: set[str] = set()
    differ: set[str] = set()
    for r in await conn.fetch(Q.utc_offsets, zones, instants):
        seen.add(r["zone"])
        zone = rules.get(r["zone"]) or zoneinfo.ZoneInfo(r["zone"])
        local = r["at"].astimezone(zone).utcoffset()
        if local is None or int(local.total_seconds()) != r["offset_seconds"]:
            differ.add(r["zone"])
    return sorted(differ | (set(zones) - seen))


class ZoneRulesProbe:
    """An ops-status probe: the zones whose rules differ between this process and PostgreSQL
    (compared at most once an hour), as a problem naming them."""

    def __init__(self, every: float = 3600.0):
        self.every = every
        self._checked_at = float("-inf")
        self._differ: list[str] = []

    async def check(self, conn: Connection) -> list[str]:
        """Compare now; log an error naming the zones that differ."""
        self._differ = await disagreements(conn)
        self._checked_at = time.monotonic()
        if self._differ:
            log.error("time zone rules differ from PostgreSQL's for %s: local times worked out "
                      "in SQL (day sheets, caps) and in Python disagree; update the tzdata "
                      "package or PostgreSQL", ", ".join(self._differ))
        return self._differ

    async def __call__(self, conn: Connection, report: StatusReport) -> None:
        if time.monotonic() - self._checked_at >= self.every:
            await self.check(conn)
        report.sections["time_zone_rules"] = {"differ_from_postgresql": self._differ}
        if self._differ:
            report.problems.append(
                "time zone rules differ between the service and PostgreSQL for "
                f"{', '.join(self._differ)}: update the tzdata package or PostgreSQL")
