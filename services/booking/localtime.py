"""Times at a site: accepted with an explicit offset or as the site's wall-clock time,
stored in UTC. Wall-clock times that do not exist (clocks spring forward) or exist twice
(clocks fall back) are refused rather than guessed."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from shared.errors import Invalid


def to_utc(value: datetime, timezone: str, field: str = "starts_at") -> datetime:
    """`value` in UTC; a naive `value` is read as wall-clock time in `timezone`."""
    if value.tzinfo is not None:
        return value.astimezone(UTC)
    tz = ZoneInfo(timezone)
    early, late = value.replace(tzinfo=tz, fold=0), value.replace(tzinfo=tz, fold=1)
    if early.utcoffset() != late.utcoffset():
        if early.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != value:
            raise Invalid(f"this wall-clock time does not exist in {timezone} (clocks spring "
                          "forward then)", field=field)
        raise Invalid(f"this wall-clock time happens twice in {timezone} (clocks fall back "
                      "then): give it with a UTC offset", field=field)
    return early.astimezone(UTC)


def local_iso(value: datetime, timezone: str) -> str:
    return value.astimezone(ZoneInfo(timezone)).isoformat()
