"""Plan templates: data in `plan_templates` (versioned; a clinic may add its own version),
validated by `Template` here."""

from __future__ import annotations

from functools import lru_cache
from uuid import UUID

import asyncpg
from pydantic import ConfigDict, Field

from shared.errors import NotFound
from shared.validation import RequestModel

DEFAULT_FOR_MODALITY = {
    "iv_infusion": "iv_induction",
    "im_injection": "im_series",
    "esketamine_nasal": "esketamine_trd",
    "oral_lozenge_kap": "kap",
}
PREPARATION, INTEGRATION = "preparation", "integration"


class Stage(RequestModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    sessions: int = Field(gt=0, le=100)
    within_days: int = Field(gt=0, le=365)

    @property
    def interval_days(self) -> float:
        return self.within_days / self.sessions


class Template(RequestModel):
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


async def latest_many(conn: asyncpg.Connection,
                      wanted: list[tuple[str, UUID]]) -> dict[tuple[str, UUID], tuple[int, Template]]:
    """The newest version of each template for each clinic (the clinic's own version first),
    for several (code, clinic) pairs in one query; 404 if one is unknown."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (w.code, w.clinic_id) w.code, w.clinic_id, t.version, t.definition"
        " FROM unnest($1::text[], $2::uuid[]) AS w (code, clinic_id)"
        " JOIN plan_templates t ON t.code = w.code AND (t.clinic_id = w.clinic_id OR t.clinic_id IS NULL)"
        " ORDER BY w.code, w.clinic_id, t.clinic_id IS NULL, t.version DESC",
        [c for c, _ in wanted], [k for _, k in wanted])
    found = {(r["code"], r["clinic_id"]): (r["version"], parse(r["definition"])) for r in rows}
    for code, clinic_id in wanted:
        if (code, clinic_id) not in found:
            raise NotFound("unknown plan template", field="template")
    return found


@lru_cache(maxsize=256)
def parse(definition: str) -> Template:
    """A template from its stored JSON (plans keep their own copy; parsed once per process)."""
    return Template.model_validate_json(definition)
