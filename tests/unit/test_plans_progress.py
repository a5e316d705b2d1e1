"""Where a patient stands in a plan (services/plans/progress.py): phase, counts, stage and
when the next session is due, from the template and the plan's sessions alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from services.plans.progress import Session, evaluate, integration_booked_after
from services.plans.templates import Stage, Template

IV = Template(title="IV ketamine", modality="iv_infusion",
              stages=[Stage(name="induction", sessions=6, within_days=21)],
              maintenance_every_days=28, max_gap_days=10)
KAP = Template(title="KAP", modality="oral_lozenge_kap",
               stages=[Stage(name="dosing sessions", sessions=3, within_days=60)],
               max_gap_days=30, preparation_min=3, integration_min=2, integration_within_days=2)
STARTED = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def day(n: float) -> datetime:
    return STARTED + timedelta(days=n)


def session(n: int, status: str, kind: str = "iv_infusion", dosing: bool = True) -> Session:
    return Session(UUID(int=n), kind, dosing, day(n), status)


def test_a_plan_without_sessions_is_being_assessed_and_nothing_is_due():
    prog = evaluate(IV, [], STARTED, "assessment", day(1))
    assert (prog.phase, prog.target, prog.counts(), prog.stage) == \
        ("assessment", 6, (0, 0, 0, 0), None)
    assert (prog.next_due_from, prog.next_due_by, prog.gap_due_at, prog.next_session_at) == \
        (None, None, None, None)


def test_during_induction_the_next_session_is_due_around_the_stage_interval_after_the_last():
    sessions = [session(1, "completed"), session(2, "cancelled"), session(4, "completed"),
                session(8, "booked"), session(3, "booked", "assessment", False)]
    prog = evaluate(IV, sessions, STARTED, "assessment", day(5))
    assert (prog.phase, prog.stage, prog.counts()) == ("induction", "induction", (1, 2, 1, 0))
    assert prog.last_completed_at == datetime(2026, 11, 5, 10, 0, tzinfo=UTC)
    # 6 sessions within 21 days: every 3.5 days, due from half to one and a half of that
    assert prog.next_due_from == datetime(2026, 11, 7, 4, 0, tzinfo=UTC)
    assert prog.next_due_by == datetime(2026, 11, 10, 16, 0, tzinfo=UTC)
    assert prog.gap_due_at == datetime(2026, 11, 15, 10, 0, tzinfo=UTC)  # max_gap_days 10
    assert prog.next_session_at == datetime(2026, 11, 9, 10, 0, tzinfo=UTC)


def test_after_the_induction_series_maintenance_comes_every_28_days():
    sessions = [session(n, "completed") for n in range(1, 7)] + [session(7, "missed")]
    prog = evaluate(IV, sessions, STARTED, "induction", day(8))
    assert (prog.phase, prog.stage, prog.counts()) == ("maintenance", "maintenance", (0, 6, 0, 1))
    assert prog.next_due_from == datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    assert prog.next_due_by == datetime(2026, 12, 19, 10, 0, tzinfo=UTC)
    assert prog.gap_due_at == datetime(2026, 12, 20, 10, 0, tzinfo=UTC)  # 42 days + 1


def test_a_plan_with_preparation_and_integration_completes_only_with_them_all():
    dosing = [session(n, "completed", "oral_lozenge_kap") for n in (10, 20, 30)]
    prep = [session(n, "completed", "preparation", False) for n in (1, 2, 3)]
    integration = [session(11, "completed", "integration", False)]
    waiting = evaluate(KAP, dosing + prep + integration, STARTED, "induction", day(31))
    assert (waiting.phase, waiting.stage) == ("induction", "completing")
    assert (waiting.preparation_done, waiting.integration_done) == (3, 1)
    assert waiting.next_due_from is None and waiting.gap_due_at is None
    second = session(21, "completed", "integration", False)
    done = evaluate(KAP, dosing + prep + integration + [second], STARTED, "induction", day(31))
    assert (done.phase, done.stage, done.integration_done) == ("completed", None, 2)


def test_a_discontinued_plan_stays_discontinued_and_still_counts():
    prog = evaluate(IV, [session(1, "completed"), session(9, "booked")], STARTED, "discontinued",
                    day(2))
    assert (prog.phase, prog.counts(), prog.stage, prog.next_due_from) == \
        ("discontinued", (1, 1, 0, 0), None, None)


def test_an_integration_session_counts_only_within_the_days_after_dosing_and_not_cancelled():
    dosing = session(10, "completed", "oral_lozenge_kap")
    assert integration_booked_after([session(11, "booked", "integration", False)], dosing, 2)
    assert not integration_booked_after([session(13, "booked", "integration", False)], dosing, 2)
    assert not integration_booked_after([session(11, "cancelled", "integration", False)], dosing, 2)
    assert not integration_booked_after([session(9, "completed", "integration", False)], dosing, 2)
