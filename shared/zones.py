"""The time zones a site may be in: the IANA zones of the US, Canada and the US territories,
as tzdata's `zone.tab` lists them by country. Canonical names only: aliases such as
`US/Eastern` or `America/Montreal` are refused with the name to use instead in the docs
(`America/New_York`, `America/Toronto`), so every site names its zone one way."""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files

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


def check_zone(value: str) -> str:
    """`value` if it is an allowed zone, else `ValueError` (with an example, never the value)."""
    if len(value) > MAX_LENGTH or value not in allowed_zones():
        raise ValueError("not an IANA time zone of the US, Canada or a US territory by its "
                         "canonical name, such as America/Vancouver or America/Puerto_Rico "
                         "(aliases are not taken)")
    return value
