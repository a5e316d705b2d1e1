"""Events published by the plans service on `plans.events`."""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from pydantic import AwareDatetime

from shared.events.base import Event
from shared.topics import PLANS_EVENTS


class _PlanEvent(Event):
    topic: ClassVar[str] = PLANS_EVENTS


class PlanStarted(_PlanEvent):
    """A treatment plan was started for a patient from a template."""

    plan_id: UUID
    template: str
    sessions_target: int


class PlanProgressed(_PlanEvent):
    """The counts of a plan changed ("3 of 6 done")."""

    plan_id: UUID
    template: str
    phase: str
    sessions_target: int
    sessions_booked: int
    sessions_completed: int
    booking_id: UUID | None = None
    next_session_at: AwareDatetime | None = None
