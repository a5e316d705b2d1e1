"""The attention inbox: what staff must act on. From booking (with names): new leads
(consultations booked on the public page, until someone marks them seen), reschedule
requests, rides not arranged 48 h before a dosing session, open waitlist offers; from the
notifier's staff inbox: replies to read (including texts from numbers it could not match to
one patient), opt-outs to acknowledge, numbers that cannot be texted. Each has an action and
leaves the list once handled (the booking changed; the text marked read). Three calls:
booking's list, the notifier's, and booking's names for the notifier's patient ids."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from services.console.i18n import N_
from services.console.services import ServiceError
from services.console.sessions import Staff
from services.console.web import api, checked_form, render, signed_in, t
from shared.auth import CARE, SCHEDULE

router = APIRouter()
INBOX_ACTIONS = {"reschedule": SCHEDULE, "cancel": SCHEDULE, "ride": CARE, "support": CARE,
                 "lead-seen": SCHEDULE}
PATHS = {"support": "support-person/confirm"}
"""Booking's path of an inbox action, when it is not the action's name."""


async def load_inbox(request: Request) -> dict[str, Any]:
    client = api(request)
    items, notifier = await asyncio.gather(client.get("booking", "/attention/items"),
                                           client.get("notifier", "/attention/all"))
    ids = {n["patient_id"] for n in notifier["failing_numbers"]}
    for r in notifier["replies"] + notifier["opt_outs"]:
        ids |= set(r.get("patient_ids") or []) | set(r.get("ride_contact_of") or [])
    names = await client.get("booking", "/patient-names", ids=sorted(ids)) if ids else {}
    bookings = items["bookings"]
    return {"reschedules": [b for b in bookings if b["reschedule_requested"]],
            "rides": [b for b in bookings if b["is_dosing"] and b["ride_status"] != "confirmed"
                      and not b["reschedule_requested"] and b.get("mode") != "home"],
            "supports": [b for b in bookings if b.get("support_unconfirmed")
                         and not b["reschedule_requested"]],
            "offers": items["offers"], "leads": items.get("leads", []),
            "replies": notifier["replies"],
            "opt_outs": notifier["opt_outs"], "numbers": notifier["failing_numbers"],
            "names": names, "tz": items.get("timezone") or "UTC"}


@router.get("/inbox")
async def inbox_page(request: Request, staff: Staff = Depends(signed_in)) -> HTMLResponse:
    return render(request, "inbox.html", nav="inbox", **await load_inbox(request))


@router.post("/inbox/bookings/{booking_id}/{action}")
async def inbox_action(
    request: Request, booking_id: UUID, action: str, staff: Staff = Depends(checked_form)
) -> HTMLResponse:
    """Handle a booking item (move it, cancel it, record the ride or that a home session's
    support person confirmed); the inbox again."""
    from services.console.web import NotAllowed

    if action not in INBOX_ACTIONS or not staff.can(*INBOX_ACTIONS[action]):
        raise NotAllowed()
    form = await request.form()
    bodies: dict[str, Callable[[], dict[str, Any]]] = {
        "reschedule": lambda: {"starts_at": str(form.get("starts_at", ""))},
        "cancel": lambda: {"reason": str(form.get("reason", "")).strip()},
        "ride": lambda: {"ride_status": "confirmed",
                         "driver_name": str(form.get("driver_name", "")).strip() or None},
        "lead-seen": dict, "support": dict}
    body = bodies[action]()
    flash = ("ok", t(request, N_("Done.")))
    try:
        await api(request).post("booking", f"/bookings/{booking_id}/{PATHS.get(action, action)}",
                                body)
    except ServiceError as exc:
        if exc.status not in (409, 422):
            raise
        flash = ("bad", t(request, "Not done: the service refused it."))
    return render(request, "inbox.html", nav="inbox", flash=flash, **await load_inbox(request))


@router.post("/inbox/replies/{reply_id}/{action}")
async def reply_action(
    request: Request, reply_id: int, action: str, staff: Staff = Depends(checked_form)
) -> HTMLResponse:
    """Mark a text read (it leaves the list), or read it as the patient revoking consent
    (their number opts out, as if they had texted STOP); the inbox again."""
    from services.console.web import NotAllowed

    if action not in ("read", "opt-out") or not staff.can(*CARE) or not 0 < reply_id < 2**63:
        raise NotAllowed()
    flash = ("ok", t(request, N_("Done.")))
    try:
        await api(request).post("notifier", f"/replies/{reply_id}/{action}")
        if action == "opt-out":
            await api(request).post("notifier", f"/replies/{reply_id}/read")
    except ServiceError as exc:
        if exc.status not in (404, 409, 422):
            raise
        flash = ("bad", t(request, "Not done: the service refused it."))
    return render(request, "inbox.html", nav="inbox", flash=flash, **await load_inbox(request))
