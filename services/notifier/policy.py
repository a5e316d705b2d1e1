"""A clinic network's texting policy, as data (`clinic_policies`), with these defaults:
TCPA quiet hours 21:00-08:00 at the site; the FCC healthcare exemption's caps of 1 text a
day and 3 a week, which appointment-critical texts may pass (a clinic can say no); every
kind of text on."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.notifier.schedule import QuietHours

CRITICAL = frozenset({"confirmation", "prep", "ride_reminder", "fasting_reminder", "day_of", "pickup"})
KINDS = CRITICAL | {"missed", "session_due", "follow_up_due", "waitlist_offer", "waitlist_taken"}


@dataclass(frozen=True)
class Policy:
    quiet: QuietHours = QuietHours()
    daily_cap: int = 1
    weekly_cap: int = 3
    critical_past_caps: bool = True
    disabled_kinds: frozenset[str] = field(default_factory=frozenset)

    def allows(self, kind: str) -> bool:
        return kind not in self.disabled_kinds

    def capped(self, kind: str, today: int, week: int) -> bool:
        """Whether one more text of `kind` would pass a cap."""
        if kind in CRITICAL and self.critical_past_caps:
            return False
        return today >= self.daily_cap or week >= self.weekly_cap


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    quiet_hours_start: int = Field(21, ge=1, le=24, description="Local hour texts stop (Florida: 20)")
    quiet_hours_end: int = Field(8, ge=0, le=23, description="Local hour texts may start")
    daily_cap: int = Field(1, gt=0, le=20)
    weekly_cap: int = Field(3, gt=0, le=50)
    critical_past_caps: bool = True
    disabled_kinds: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_kinds(self):
        unknown = set(self.disabled_kinds) - KINDS
        if unknown:
            raise ValueError(f"unknown kinds of text: {sorted(unknown)}; known: {sorted(KINDS)}")
        return self


async def load(conn: asyncpg.Connection, clinic_id: UUID, default_quiet: QuietHours) -> Policy:
    from services.notifier.handlers import Q

    row = await conn.fetchrow(Q.policy, clinic_id)
    if row is None:
        return Policy(quiet=default_quiet)
    return Policy(QuietHours(row["quiet_hours_start"], row["quiet_hours_end"]), row["daily_cap"],
                  row["weekly_cap"], row["critical_past_caps"], frozenset(row["disabled_kinds"]))


def cap_windows(now: datetime, timezone: str) -> tuple[datetime, datetime]:
    """The starts of the patient's local day and of the last 7 days."""
    local = now.astimezone(ZoneInfo(timezone))
    day = datetime.combine(local.date(), time(0), ZoneInfo(timezone))
    return day, day - timedelta(days=6)
