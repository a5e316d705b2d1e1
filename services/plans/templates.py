"""Plan templates (data). See ../shared/DOMAIN.md for the protocols they follow."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PlanTemplate:
    code: str
    title: str
    modality: str
    """The dosing session type the plan counts."""
    induction_sessions: int
    induction_days: int


TEMPLATES = {t.code: t for t in (
    PlanTemplate("iv_induction", "IV induction series", "iv_infusion", 6, 21),
    PlanTemplate("im_series", "IM injection series", "im_injection", 6, 21),
    PlanTemplate("esketamine_trd", "Nasal spray, weeks 1-8", "esketamine_nasal", 12, 56),
    PlanTemplate("esketamine_si", "Nasal spray, 4 weeks twice weekly", "esketamine_nasal", 8, 28),
    PlanTemplate("kap", "Assisted psychotherapy", "oral_lozenge_kap", 3, 42),
)}

DEFAULT_FOR_MODALITY = {
    "iv_infusion": "iv_induction",
    "im_injection": "im_series",
    "esketamine_nasal": "esketamine_trd",
    "oral_lozenge_kap": "kap",
}
