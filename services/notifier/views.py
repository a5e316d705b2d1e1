"""Aggregate reads for staff screens (the console), each one statement (views.sql) whose
JSON PostgreSQL builds: the texts of a site's day sheet, a patient's texts and replies; and
the console's attention list in one call (the inbox's own queries)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from services.notifier.store import INBOX, VIEWS, Q, dicts
from shared.auth import READ, Principal, require
from shared.days import day_range
from shared.errors import NotFound
from shared.validation import SaneDate

router = APIRouter(tags=["staff screens"])
MAX_DAYS = 42


def _json(text: str) -> Response:
    return Response(text, media_type="application/json", headers={"Cache-Control": "no-store"})


@router.get("/sites/{site_id}/texts")
async def site_texts(site_id: UUID, request: Request,
                     first: Annotated[SaneDate, Query(alias="from")],
                     who: Principal = require(*READ),
                     last: Annotated[SaneDate | None, Query(alias="to")] = None) -> Response:
    """By booking, for a site's appointments between two local dates (inclusive): their
    texts (kind, state, delivery) and the number of replies about them staff should read.
    A site of another network has no appointments here: {}."""
    first, last = day_range(first, last, MAX_DAYS)
    text = await request.app.state.runtime.db.fetchval(VIEWS.site_texts, who.clinic_id, site_id,
                                                       first, last)
    return _json(text)


@router.get("/patients/{patient_id}/messages")
async def patient_messages(patient_id: UUID, request: Request,
                           who: Principal = require(*READ)) -> Response:
    """A patient's texts (with delivery state) and replies, newest first, and whether their
    number can be texted (404 for a patient of another network, or not known here yet)."""
    text = await request.app.state.runtime.db.fetchval(VIEWS.patient_messages, patient_id,
                                                       who.clinic_id)
    if text is None:
        raise NotFound("unknown patient", field="patient_id")
    return _json(text)


LAST_ID = 2**63 - 1


@router.get("/attention/all")
async def attention_all(request: Request, who: Principal = require(*READ),
                        limit: Annotated[int, Query(ge=1, le=200)] = 100) -> dict[str, Any]:
    """What staff must act on, in one call: numbers that cannot be texted, unread texts that
    changed nothing (to read and answer), and unread opt-outs (to acknowledge)."""
    async with request.app.state.runtime.db.acquire() as conn:
        return {"failing_numbers": await dicts(conn, Q.failing_numbers, who.clinic_id, limit),
                "replies": await dicts(conn, INBOX.inbox_page, who.clinic_id, LAST_ID, True, True,
                                       None, limit),
                "opt_outs": await dicts(conn, INBOX.inbox_page, who.clinic_id, LAST_ID, True, False,
                                        "opt_out", limit)}
