"""A clinic network's texting policy, as data (`clinic_policies`), with these defaults:
TCPA quiet hours 21:00-08:00 at the site; the FCC healthcare exemption's caps of 1 text a
day and 3 a week, which appointment-critical texts may pass (a clinic can say no); every
kind of text on.

Quiet hours may also be set for the sites of a state or province (some states are stricter:
Florida stops at 20:00) and for one site (`quiet_hours_overrides`): the hours that apply to
a text are the site's, else its region's, else the network's, else the service's default."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol, Self
from uuid import UUID

from pydantic import ConfigDict, Field, StringConstraints, field_validator, model_validator

from services.notifier import store
from services.notifier.schedule import QuietHours
from services.notifier.store import Q
from shared.db import Connection
from shared.validation import RequestModel

CRITICAL = frozenset({"confirmation", "prep", "ride_reminder", "fasting_reminder", "day_of",
                      "pickup", "support"})
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


class QuietHoursIn(RequestModel):
    """Texts may go out from `quiet_hours_end` to `quiet_hours_start` o'clock, local time."""

    model_config = ConfigDict(extra="forbid")
    quiet_hours_start: int = Field(ge=1, le=24, description="Local hour texts stop")
    quiet_hours_end: int = Field(ge=0, le=23, description="Local hour texts may start")

    @model_validator(mode="after")
    def _some_hours_left(self) -> Self:
        if self.quiet_hours_end >= self.quiet_hours_start:
            raise ValueError("quiet_hours_end (when texts may start) must come before "
                             "quiet_hours_start (when they stop), e.g. 8 and 21")
        return self


Region = Annotated[str, StringConstraints(pattern=r"^(US|CA)-[A-Z]{2}$")]


class PolicyIn(QuietHoursIn):
    quiet_hours_start: int = Field(
        21, ge=1, le=24, description="Local hour texts stop (Florida: 20)"
    )
    quiet_hours_end: int = Field(8, ge=0, le=23, description="Local hour texts may start")
    daily_cap: int = Field(1, gt=0, le=20)
    weekly_cap: int = Field(3, gt=0, le=50)
    critical_past_caps: bool = True
    disabled_kinds: list[str] = Field(default_factory=list)
    regions: dict[Region, QuietHoursIn] = Field(
        default_factory=dict, description="Quiet hours for the sites of a state or province "
                                          "(ISO 3166-2, e.g. US-FL), instead of the network's")
    sites: dict[UUID, QuietHoursIn] = Field(
        default_factory=dict, description="Quiet hours for one site, instead of its region's")

    @field_validator("disabled_kinds")
    @classmethod
    def _known_kinds(cls, kinds: list[str]) -> list[str]:
        if set(kinds) - KINDS:
            raise ValueError(f"unknown kinds of text; known: {sorted(KINDS)}")
        return kinds


class PolicyColumns(Protocol):
    """A network's `clinic_policies` columns (None when it has none) and the quiet hours
    resolved for one site (None: the service's default): `store.PolicyRow`, `store.DueText`."""

    @property
    def daily_cap(self) -> int | None: ...
    @property
    def weekly_cap(self) -> int | None: ...
    @property
    def critical_past_caps(self) -> bool | None: ...
    @property
    def disabled_kinds(self) -> list[str] | None: ...
    @property
    def quiet_start(self) -> int | None: ...
    @property
    def quiet_end(self) -> int | None: ...


def policy_from(row: PolicyColumns, default_quiet: QuietHours) -> Policy:
    """The policy from a network's columns and a site's resolved quiet hours."""
    # the columns of one row are set together (NOT NULL in a policy or a site's hours)
    quiet = default_quiet if row.quiet_start is None or row.quiet_end is None else \
        QuietHours(row.quiet_start, row.quiet_end)
    if row.daily_cap is None or row.weekly_cap is None or row.critical_past_caps is None:
        return Policy(quiet=quiet)
    return Policy(quiet, row.daily_cap, row.weekly_cap, row.critical_past_caps,
                  frozenset(row.disabled_kinds or ()))


async def load(conn: Connection, clinic_id: UUID, default_quiet: QuietHours, *,
               site_id: UUID | None = None, region: str | None = None) -> Policy:
    """The clinic's policy for texts about a site (quiet hours: site > region > network)."""
    key = (clinic_id, site_id, region)
    return (await load_many(conn, {key}, default_quiet))[key]


async def load_many(conn: Connection, keys: set[tuple[UUID, UUID | None, str | None]],
                    default_quiet: QuietHours) -> dict[tuple[Any, ...], Policy]:
    """`load` for several (clinic, site, region) at once, by key."""
    return {(r.clinic_id, r.site_id, r.region): policy_from(r, default_quiet)
            for r in await store.policies_for_sites(conn, keys)}


async def show(conn: Connection, clinic_id: UUID) -> dict[str, Any]:
    """The policy as the API shows it: the network's, with its regions' and sites' hours."""
    shown = await store.one_dict(conn, Q.policy, clinic_id) or {
        **PolicyIn().model_dump(), "clinic_id": clinic_id}
    shown["regions"], shown["sites"] = {}, {}
    for o in await store.dicts(conn, Q.quiet_hours_overrides, clinic_id):
        hours = {
            "quiet_hours_start": o["quiet_hours_start"],
            "quiet_hours_end": o["quiet_hours_end"],
        }
        if o["region"] is not None:
            shown["regions"][o["region"]] = hours
        else:
            shown["sites"][str(o["site_id"])] = hours
    return shown


async def save(conn: Connection, clinic_id: UUID, cmd: PolicyIn) -> dict[str, Any]:
    """Replace the clinic's policy (its region and site hours included) with `cmd`."""
    async with conn.transaction():
        await conn.execute(Q.upsert_policy, clinic_id, cmd.quiet_hours_start, cmd.quiet_hours_end,
                           cmd.daily_cap, cmd.weekly_cap, cmd.critical_past_caps,
                           cmd.disabled_kinds)
        scoped = [(region, None, h) for region, h in cmd.regions.items()] + \
                 [(None, site, h) for site, h in cmd.sites.items()]
        await conn.execute(Q.delete_quiet_hours_overrides, clinic_id)
        await conn.execute(Q.insert_quiet_hours_overrides, clinic_id,
                           [r for r, _, _ in scoped], [s for _, s, _ in scoped],
                           [h.quiet_hours_start for *_, h in scoped],
                           [h.quiet_hours_end for *_, h in scoped])
        return await show(conn, clinic_id)
