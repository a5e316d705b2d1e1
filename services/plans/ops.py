"""The plans service's part of the ops picture: durable timers pending and overdue."""

from __future__ import annotations

from services.plans import store
from services.plans.model import as_dict
from shared.db import Connection
from shared.ops_status import Probe, StatusReport

TIMER_KINDS = ("session_due", "adherence_gap", "rems_overdue")


def timer_probe(overdue_after: float) -> Probe:
    """The probe adding the timers to the status and metrics; a timer not fired
    `overdue_after` seconds after its time is overdue (the timer worker is not keeping up)."""

    async def probe(conn: Connection, report: StatusReport) -> None:
        rows = {r.kind: r for r in await store.timer_counts(conn, overdue_after)}
        pending = report.gauge(
            "kcb_plan_timers_pending", "Durable plan timers not fired yet.", "kind"
        )
        overdue = report.gauge(
            "kcb_plan_timers_overdue", "Plan timers past their time and not fired.", "kind"
        )
        for kind in TIMER_KINDS:
            row = rows.get(kind)
            pending.add(row.pending if row else 0, kind)
            overdue.add(row.overdue if row else 0, kind)
        total_overdue = sum(r.overdue for r in rows.values())
        report.sections["timers"] = {"pending": sum(r.pending for r in rows.values()),
                                     "overdue": total_overdue,
                                     "by_kind": [as_dict(r) for r in rows.values()]}
        if total_overdue:
            report.problems.append(f"timers: {total_overdue} overdue")

    return probe
