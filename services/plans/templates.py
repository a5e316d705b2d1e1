"""Plan templates: data in `plan_templates` (versioned; a clinic may add its own version),
validated by `Template` here. No I/O here (services/plans/store.py reads them)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import ConfigDict, Field

from shared.validation import RequestModel

DEFAULT_FOR_MODALITY = {
    "iv_infusion": "iv_induction",
    "im_injection": "im_series",
    "esketamine_nasal": "esketamine_trd",
    "oral_lozenge_kap": "kap",
    "home_low_dose": "kap",
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
    also_counts: list[str] = Field(default_factory=list, max_length=10,
                                   description="Other dosing session types it counts like its "
                                               "own, e.g. home sessions (home_low_dose)")
    stages: list[Stage] = Field(min_length=1, max_length=10)
    maintenance_every_days: int | None = Field(
        None, gt=0, le=365, description="None: the plan completes after the stages"
    )
    max_gap_days: int = Field(14, gt=0, le=365)
    preparation_min: int = Field(0, ge=0, le=20)
    integration_min: int = Field(0, ge=0, le=20)
    integration_within_days: int | None = Field(None, gt=0, le=30)
    rems: bool = False
    rems_form_within_days: int = Field(7, gt=0, le=60)

    @property
    def target(self) -> int:
        return sum(s.sessions for s in self.stages)

    @property
    def dosing_types(self) -> list[str]:
        """The dosing session types the plan counts: its modality's, and `also_counts`."""
        return [self.modality, *self.also_counts]

    def counts(self, session_type: str) -> bool:
        """Whether a dosing session of `session_type` counts in the plan."""
        return session_type == self.modality or session_type in self.also_counts


@lru_cache(maxsize=256)
def parse(definition: str) -> Template:
    """A template from its stored JSON (plans keep their own copy; parsed once per process)."""
    return Template.model_validate_json(definition)
