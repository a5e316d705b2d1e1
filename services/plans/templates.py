"""Plan templates: data in `plan_templates` (versioned; a clinic may add its own version),
validated by `Template` here."""

from __future__ import annotations

from uuid import UUID

import asyncpg
from pydantic import BaseModel, ConfigDict, Field

from shared.errors import NotFound

DEFAULT_FOR_MODALITY = {
    "iv_infusion": "iv_induction",
    "im_injection": "im_series",
    "esketamine_nasal": "esketamine_trd",
    "oral_lozenge_kap": "kap",
}
PREPARATION, INTEGRATION = "preparation", "integration"


class Stage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    sessions: int = Field(gt=0, le=100)
    within_days: int = Field(gt=0, le=365)

    @property
    def interval_days(self) -> float:
        return self.within_days / self.sessions


class Template(BaseModel):
    """What a course of treatment asks for."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    title: str = Field(min_length=1, max_length=200)
    modality: str = Field(description="The dosing session type the plan counts")
    stages: list[Stage] = Field(min_length=1, max_length=10)
    maintenance_every_days: int | None = Field(None, gt=0, le=365,
                                               description="None: the plan completes after the stages")
    max_gap_days: int = Field(14, gt=0, le=365)
    preparation_min: int = Field(0, ge=0, le=20)
    integration_min: int = Field(0, ge=0, le=20)
    integration_within_days: int | None = Field(None, gt=0, le=30)
    rems: bool = False
    rems_form_within_days: int = Field(7, gt=0, le=60)

    @property
    def target(self) -> int:
        return sum(s.sessions for s in self.stages)


async def latest(conn: asyncpg.Connection, code: str, clinic_id: UUID) -> tuple[int, Template]:
    """The newest version of a template for a clinic (its own override first)."""
    row = await conn.fetchrow(
        "SELECT version, definition FROM plan_templates WHERE code = $1"
        " AND (clinic_id = $2 OR clinic_id IS NULL)"
        " ORDER BY clinic_id IS NULL, version DESC LIMIT 1", code, clinic_id)
    if row is None:
        raise NotFound(f"unknown plan template {code!r}", field="template")
    return row["version"], Template.model_validate_json(row["definition"])
