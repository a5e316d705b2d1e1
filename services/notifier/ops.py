"""The notifier's part of the ops picture: texts pending, due and late, what became of the
texts sent lately (by Twilio error code), numbers that cannot be texted, sending paused by
an account or sender problem; and `/ops/texts`."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from services.notifier.store import OPS, dicts, one_dict
from shared.db import Connection
from shared.ops_api import require_ops
from shared.ops_status import Probe, StatusReport

OUTCOME_HOURS = 24


def text_probe(late_after: float) -> Probe:
    """The probe adding the text queue and outcomes to the notifier's status and metrics;
    a text due more than `late_after` seconds ago and not sent is late."""

    async def probe(conn: Connection, report: StatusReport) -> None:
        await _texts(conn, report, late_after)

    return probe


async def _texts(conn: Connection, report: StatusReport, late_after: float) -> None:
    queue = await one_dict(conn, OPS.text_queue, late_after) or {}
    outcomes = await dicts(conn, OPS.text_outcomes, OUTCOME_HOURS)
    failing = await conn.fetchval(OPS.failing_number_count)
    minutes = await dicts(conn, OPS.texts_per_minute, max(1, report.history_minutes))
    report.sections["texts"] = {**queue, "late_after_seconds": late_after,
                                "outcomes_last_24h": outcomes, "failing_numbers": failing,
                                "this_minute": minutes[-1]}
    if report.history_minutes:
        report.series["texts_per_minute"] = minutes
    g = report.gauge("kcb_texts", "Texts in the queue: pending, due (time has come), late "
                     "(due and not sent), stuck (claimed long ago).", "state")
    for state in ("pending", "due", "late", "stuck"):
        g.add(queue[state], state)
    report.gauge("kcb_texts_oldest_due_seconds", "How long the oldest due text has waited "
                 "for the dispatcher (0 when none is due).").add(queue["oldest_due_seconds"])
    g = report.gauge(
        "kcb_texts_last_24h",
        "Texts of the last 24 h by outcome and Twilio error code.",
        "outcome",
        "error_code",
    )
    for row in outcomes:
        g.add(row["texts"], row["outcome"], row["error_code"])
    report.gauge("kcb_failing_numbers", "Patients whose number Twilio refused for good.").add(
        failing
    )
    await _pauses(conn, report)
    if queue["late"]:
        report.problems.append(f"texts: {queue['late']} late (due over {late_after:.0f}s ago)")
    if queue["stuck"]:
        report.problems.append(f"texts: {queue['stuck']} claimed but not sent")


async def _pauses(conn: Connection, report: StatusReport) -> None:
    """Sending paused by an account or sender problem: named by Twilio code and meaning."""
    pauses = await dicts(conn, OPS.sender_pauses)
    report.sections["texts"]["sending_paused"] = pauses
    g = report.gauge(
        "kcb_sending_paused",
        "1 while sending is paused by an account or sender "
        "problem Twilio named (by its code and meaning): texts wait.",
        "code",
        "meaning",
    )
    for p in pauses:
        g.add(1, p["code"], p["meaning"])
        report.problems.append(f"sending paused: Twilio {p['code']} ({p['meaning']}) since "
                               f"{p['since']:%Y-%m-%d %H:%M} UTC; texts wait until it is fixed")


router = APIRouter(prefix="/ops", tags=["ops"], dependencies=[Depends(require_ops)])


@router.get("/texts")
async def texts(request: Request, state: Literal["pending", "late"] = "pending",
                limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    """Texts waiting to go out, or overdue ones, oldest due first (no patient data)."""
    rt = request.app.state.runtime
    async with rt.db.acquire() as conn:
        items = await dicts(conn, OPS.texts_in_state, state, rt.settings.ops_late_text_seconds,
                            limit)
    return {"state": state, "items": items}
