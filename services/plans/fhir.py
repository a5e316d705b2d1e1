"""A plan as a FHIR R4 CarePlan, its sessions as appointment activities."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.plans.model import Plan, PlanSession

STATUS = {"assessment": "active", "induction": "active", "maintenance": "active",
          "completed": "completed", "discontinued": "revoked"}
ACTIVITY_STATUS = {"booked": "scheduled", "arrived": "in-progress", "completed": "completed",
                   "cancelled": "cancelled", "missed": "stopped"}


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def care_plan(plan: Plan, sessions: list[PlanSession]) -> dict[str, Any]:
    """A plan as a FHIR R4 CarePlan."""
    return {
        "resourceType": "CarePlan",
        "id": str(plan.id),
        "meta": {"lastUpdated": _instant(plan.updated_at)},
        "status": STATUS[plan.phase],
        "intent": "plan",
        "title": plan.template.replace("_", " "),
        "description": f"{plan.sessions_completed} of {plan.sessions_target} sessions done;"
                       f" phase: {plan.phase}",
        "subject": {"reference": f"Patient/{plan.patient_id}"},
        "period": {"start": _instant(plan.created_at)},
        "created": _instant(plan.created_at),
        "activity": [{  # detail only: R4 allows a reference or a detail, not both
            "detail": {
                "kind": "Appointment",
                "code": {"text": s.session_type.replace("_", " ")},
                "status": ACTIVITY_STATUS[s.status],
                "scheduledString": _instant(s.starts_at),
            }} for s in sessions],
    }
