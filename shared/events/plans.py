"""Events published by the plans service on `plans.events` (keyed by patient)."""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from pydantic import AwareDatetime

from shared.events.base import Event
from shared.topics import PLANS_EVENTS


class _PlanEvent(Event):
    topic: ClassVar[str] = PLANS_EVENTS
    plan_id: UUID


class PlanStarted(_PlanEvent):
    """A treatment plan was started for a patient from a template."""

    template: str
    template_version: int = 1
    sessions_target: int


class PlanProgressed(_PlanEvent):
    """The counts of a plan changed ("3 of 6 done", what is next)."""

    template: str
    phase: str
    sessions_target: int
    sessions_booked: int
    """Upcoming dosing sessions (booked or checked in)."""
    sessions_completed: int
    sessions_cancelled: int = 0
    sessions_missed: int = 0
    booking_id: UUID | None = None
    next_session_at: AwareDatetime | None = None
    next_due_from: AwareDatetime | None = None
    next_due_by: AwareDatetime | None = None


class PlanPhaseChanged(_PlanEvent):
    """assessment -> induction -> maintenance -> completed, or discontinued."""

    previous_phase: str
    phase: str


class PlanCompleted(_PlanEvent):
    """Every session the plan asked for took place."""

    template: str
    sessions_completed: int


class PlanSessionDue(_PlanEvent):
    """The window for the next session opened and none is booked."""

    due_from: AwareDatetime
    due_by: AwareDatetime


class PlanAdherenceGap(_PlanEvent):
    """Longer since the last session than the template allows."""

    last_session_at: AwareDatetime | None
    allowed_days: int


class IntegrationSessionMissing(_PlanEvent):
    """A dosing session was completed with no integration session booked within the days
    the template asks."""

    booking_id: UUID
    within_days: int


class RemsMonitoringFormDue(_PlanEvent):
    """A REMS Patient Monitoring Form is due for a completed esketamine session."""

    booking_id: UUID
    due_at: AwareDatetime


class RemsMonitoringFormOverdue(_PlanEvent):
    """The REMS Patient Monitoring Form was not recorded as filed in time (for staff)."""

    booking_id: UUID
    due_at: AwareDatetime
