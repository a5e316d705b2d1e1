"""Where a patient stands in a plan: a pure function of the template and the plan's sessions.

The state is always recomputed from the full set of sessions (each as its latest booking
event left it), never incremented, so duplicated, replayed or reordered events cannot
double-count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from services.plans.templates import INTEGRATION, PREPARATION, Template

UPCOMING = ("booked", "arrived")


@dataclass(frozen=True)
class Session:
    booking_id: UUID
    session_type: str
    is_dosing: bool
    starts_at: datetime
    status: str  # booked | arrived | completed | cancelled | missed


@dataclass(frozen=True)
class Progress:
    phase: str
    target: int
    booked: int
    completed: int
    cancelled: int
    missed: int
    preparation_done: int
    integration_done: int
    stage: str | None
    last_completed_at: datetime | None
    next_session_at: datetime | None
    next_due_from: datetime | None
    next_due_by: datetime | None
    gap_due_at: datetime | None

    def counts(self) -> tuple[int, int, int, int]:
        return self.booked, self.completed, self.cancelled, self.missed


def evaluate(t: Template, sessions: list[Session], started_at: datetime, phase: str,
             now: datetime) -> Progress:
    """The plan's progress now. `phase` is the stored one (discontinued stays discontinued)."""
    dosing = [s for s in sessions if s.is_dosing and t.counts(s.session_type)]
    done = sorted(s.starts_at for s in dosing if s.status == "completed")
    upcoming = sorted(s.starts_at for s in dosing if s.status in UPCOMING)
    prep = sum(1 for s in sessions if s.session_type == PREPARATION and s.status == "completed")
    integ = sum(1 for s in sessions if s.session_type == INTEGRATION and s.status == "completed")
    new_phase = _phase(t, phase, dosing, len(done), prep, integ)
    stage, interval = _stage(t, new_phase, len(done))
    last = done[-1] if done else None
    due_from = due_by = gap_due = None
    if interval:
        anchor = last or started_at
        due_from = anchor + timedelta(days=interval * 0.5)
        due_by = anchor + timedelta(days=interval * 1.5)
        allowed = t.max_gap_days if new_phase == "induction" else int(interval * 1.5) + 1
        gap_due = anchor + timedelta(days=allowed) if last else None
    future = [u for u in upcoming if u >= now]
    return Progress(
        phase=new_phase, target=t.target, booked=len(upcoming), completed=len(done),
        cancelled=sum(1 for s in dosing if s.status == "cancelled"),
        missed=sum(1 for s in dosing if s.status == "missed"),
        preparation_done=prep, integration_done=integ, stage=stage, last_completed_at=last,
        next_session_at=future[0] if future else None, next_due_from=due_from,
        next_due_by=due_by, gap_due_at=gap_due)


def _phase(t: Template, stored: str, dosing: list[Session], completed: int, prep: int,
           integ: int) -> str:
    """Discontinued stays so; the target met (with the preparation and integration sessions
    asked for): maintenance, or completed without it; a dosing session not cancelled:
    induction; else assessment."""
    if stored == "discontinued":
        return stored
    if completed >= t.target and prep >= t.preparation_min and integ >= t.integration_min:
        return "maintenance" if t.maintenance_every_days else "completed"
    if any(s.status != "cancelled" for s in dosing):
        return "induction"
    return "assessment"


def _stage(t: Template, phase: str, completed: int) -> tuple[str | None, float | None]:
    """The stage of the plan and the days between its sessions (None: no rhythm to keep)."""
    if phase == "induction":
        seen = 0
        for st in t.stages:
            seen += st.sessions
            if completed < seen:
                return st.name, st.interval_days
        return "completing", None  # the dosing sessions are done; preparation/integration missing
    if phase == "maintenance":
        return "maintenance", float(t.maintenance_every_days or 0)
    return None, None


def integration_booked_after(sessions: list[Session], dosing: Session, within_days: int) -> bool:
    """Whether an integration session (not cancelled) starts within `within_days` after the
    dosing session."""
    end = dosing.starts_at + timedelta(days=within_days)
    return any(s.session_type == INTEGRATION and s.status != "cancelled"
               and dosing.starts_at <= s.starts_at <= end for s in sessions)
