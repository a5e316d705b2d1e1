"""What the plans service reads, as frozen dataclasses: the rows services/plans/store.py
returns (one class per shape a query returns, fields in the order of its columns). A plan's
sessions as the rules see them are services/plans/progress.py's `Session`. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

# re-exported: the service's rows use them
from shared.rows import as_dict as as_dict
from shared.rows import field_names as field_names


@dataclass(frozen=True, slots=True)
class Plan:
    """A patient's treatment plan: its template (a copy, `definition`, as JSON) and where it
    stands."""

    id: UUID
    clinic_id: UUID
    patient_id: UUID
    template: str
    template_version: int
    definition: str
    modality: str
    phase: str
    sessions_target: int
    sessions_booked: int
    sessions_completed: int
    sessions_cancelled: int
    sessions_missed: int
    next_due_from: datetime | None
    next_due_by: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class PlanSession:
    """A session in a plan's timeline, as the latest booking event about it said."""

    booking_id: UUID
    session_type: str
    is_dosing: bool
    starts_at: datetime
    status: str
    version: int


@dataclass(frozen=True, slots=True)
class RemsForm:
    """A REMS Patient Monitoring Form due for a completed esketamine session."""

    booking_id: UUID
    due_at: datetime
    filed_at: datetime | None
    filed_by: str | None


@dataclass(frozen=True, slots=True)
class Timer:
    """A durable timer claimed to fire: for which plan, what kind, about what (`ref`)."""

    id: int
    plan_id: UUID
    kind: str
    ref: str
    due_at: datetime


@dataclass(frozen=True, slots=True)
class TimerCount:
    """Timers not fired yet of one kind: how many, how many overdue."""

    kind: str
    pending: int
    overdue: int


@dataclass(frozen=True, slots=True)
class TemplateVersion:
    """A version of a plan template (`clinic_id` None: built in)."""

    code: str
    version: int
    clinic_id: UUID | None
    definition: str


@dataclass(frozen=True, slots=True)
class ClinicSettings:
    clinic_id: UUID
    auto_create_plans: bool
