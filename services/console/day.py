"""The day sheet, the landing page: a site's sessions of one local day, by room in time
order, with patient, session type, status, confirmation, ride, texts and replies to read;
and the actions on them (check in, complete, no-show, cancel, reschedule, ride). A page
costs two calls (booking's sheet and the notifier's texts of the same day, together); an
action three (the action, then the sheet again). Open sheets are kept current by a live
stream (see live.py)."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from starlette.datastructures import FormData

from services.console import i18n, labels, sessions, sheet_rows
from services.console.i18n import N_
from services.console.services import Api, ServiceError
from services.console.sessions import Staff
from services.console.web import (
    NotAllowed,
    api,
    checked_form,
    redirect,
    render,
    signed_in,
    t,
    watching,
)
from shared.auth import CARE, SCHEDULE
from shared.events import Envelope

log = logging.getLogger(__name__)
router = APIRouter()
Day = Annotated[date, Query(alias="date")]
ACTIONS = {
    "check-in": (CARE, N_("Checked in.")), "complete": (CARE, N_("Completed.")),
    "no-show": (CARE, N_("Marked as a no-show.")), "cancel": (SCHEDULE, N_("Cancelled.")),
    "reschedule": (SCHEDULE, N_("Moved.")), "ride": (CARE, N_("Ride recorded.")),
}


def _local_today(timezone: str) -> date:
    return datetime.now(ZoneInfo(timezone)).date()


@functools.cache
def words(language: str) -> dict[str, Any]:
    """Every label a sheet's rows use, translated once per language (a sheet has hundreds of
    rows: translating cell by cell costs more than the rest of the page)."""
    def tr(message: str) -> str:
        return i18n.gettext(language, message)
    return {
        "types": {k: tr(v) for k, v in labels.SESSION_TYPES.items()},
        "modes": {k: tr(v) for k, v in labels.MODES.items()},
        "statuses": {k: tr(v) for k, v in labels.STATUSES.items()},
        "rides": {k: tr(v) for k, v in labels.RIDES.items()},
        "kinds": {k: tr(v) for k, v in labels.TEXT_KINDS.items()},
        "states": {k: tr(v) for k, v in labels.TEXT_STATES.items()},
        **{key: tr(text) for key, text in (
            ("check_in", N_("Check in")), ("complete", N_("Complete")),
            ("no_show", N_("No-show")), ("ride", N_("Ride")), ("reschedule", N_("Reschedule")),
            ("cancel", N_("Cancel")), ("confirmed", N_("confirmed")), ("not_yet", N_("not yet")),
            ("not_needed", N_("not needed")), ("wants_another_time", N_("wants another time")),
            ("remote", N_("Phone and video (no room)")), ("online", N_("booked online")),
            ("text_chip", N_("%(kind)s: %(state)s")))},
    }


async def load_sheet(request: Request, site: UUID, day: date) -> dict[str, Any]:
    """What a day sheet shows, from two calls made together; each row's words and times
    ready to show in the person's language."""
    client: Api = api(request)
    sheet, texts = await asyncio.gather(
        client.get("booking", f"/sites/{site}/sheet", **{"from": day.isoformat()}),
        client.get("notifier", f"/sites/{site}/texts", **{"from": day.isoformat()}))
    hub = request.app.state.hub
    language = request.state.staff.language
    w = words(language)
    tz = sheet["site"]["timezone"]
    now = datetime.now(UTC)
    by_room: dict[str, list[dict[str, Any]]] = {r["name"]: [] for r in sheet["rooms"]}
    for b in sheet["bookings"]:
        about = texts.get(b["id"], {})
        b["confirmed"] = b["confirmed"] or hub.recently_confirmed(UUID(b["id"]))
        b["texts"] = [(labels.TEXT_TONE[state], w["text_chip"] % {
                          "kind": w["kinds"].get(x["kind"], x["kind"]),
                          "state": w["states"][state]})
                      for x in about.get("texts", []) if x["kind"] != "confirmation"
                      for state in (labels.text_state(x),)]
        b["replies"] = about.get("replies", 0)
        b["started"] = datetime.fromisoformat(b["starts_at"]) <= now
        b["when"] = i18n.local_time(b["starts_at"], tz, language)
        b["until"] = i18n.local_time(b["ends_at"], tz, language)
        b["at"] = datetime.fromisoformat(b["starts_at"]).astimezone(ZoneInfo(tz)) \
            .strftime("%Y-%m-%dT%H:%M")
        # a visit by phone or video, or at home, takes no room: listed under its mode
        by_room.setdefault(b["room_name"] or w["modes"][b.get("mode", "clinic")], []).append(b)
    staff = request.state.staff
    care, schedule = staff.can(*CARE), staff.can(*SCHEDULE)
    rooms = [(name, sheet_rows.rows(rows, w, str(site), day, care, schedule))
             for name, rows in by_room.items() if rows]
    return {"site": sheet["site"], "sites": sheet["sites"], "day": day,
            "rooms": rooms, "count": len(sheet["bookings"]),
            "previous": day - timedelta(days=1), "next": day + timedelta(days=1),
            "today": _local_today(tz)}


@router.get("/day")
async def day_page(request: Request, staff: Staff = Depends(signed_in), site: UUID | None = None,
                   day: Annotated[date | None, Query(alias="date")] = None) -> Response:
    """The day sheet of a site (default: the network's first) for a local date (default:
    today at the site)."""
    if site is None or day is None:
        listed = await api(request).get("booking", "/sites", limit=100)
        sites = {s["id"]: s for s in listed["items"]}
        chosen = sites.get(str(site)) if site else None
        chosen = chosen or (listed["items"][0] if listed["items"] else None)
        if chosen is None:
            return render(request, "empty.html", nav="day", title=t(request, "Day sheet"),
                          message=t(request, "This network has no site yet."))
        return redirect(
            request, f"/day?site={chosen['id']}&date={_local_today(chosen['timezone'])}"
        )
    return render(request, "day.html", nav="day", **await load_sheet(request, site, day))


@router.get("/day/sheet")
async def day_sheet(
    request: Request, site: UUID, day: Day, staff: Staff = Depends(watching)
) -> HTMLResponse:
    """The sheet alone (live updates re-read it; not counted as the person's activity)."""
    return render(request, "_sheet.html", **await load_sheet(request, site, day))


@router.get("/day/bookings/{booking_id}/dialog/{kind}")
async def action_dialog(request: Request, booking_id: UUID, kind: str, site: UUID, day: Day,
                        at: str = "", staff: Staff = Depends(signed_in)) -> Response:
    """The form of an action that needs more than a click (no call to the services)."""
    if kind not in ("cancel", "reschedule", "ride"):
        return Response(status_code=404)
    return render(request, "_dialog.html", kind=kind, booking_id=booking_id, site_id=site,
                  day=day, at=at[:16])


def _action_call(action: str, form: FormData) -> tuple[str, dict[str, Any] | None]:
    if action == "cancel":
        return "cancel", {"reason": str(form.get("reason", "")).strip()}
    if action == "reschedule":
        return "reschedule", {"starts_at": str(form.get("starts_at", ""))}
    if action == "ride":
        return "ride", {"ride_status": str(form.get("ride_status", "")),
                        "driver_name": str(form.get("driver_name", "")).strip() or None}
    return action, None


@router.post("/day/bookings/{booking_id}/{action}")
async def booking_action(request: Request, booking_id: UUID, action: str,
                         staff: Staff = Depends(checked_form)) -> Response:
    """Do `action` on a booking with the person's token; the sheet again, with what happened."""
    if action not in ACTIONS:
        return Response(status_code=404)
    allowed_roles, done = ACTIONS[action]
    if not staff.can(*allowed_roles):
        raise NotAllowed()
    form = await request.form()
    where = {**request.query_params, **{k: v for k, v in form.items() if k in ("site", "date")}}
    try:
        site, day = UUID(str(where.get("site"))), date.fromisoformat(str(where.get("date")))
    except ValueError:
        return Response(status_code=422)
    path, body = _action_call(action, form)
    flash = ("ok", t(request, done))
    try:
        await api(request).post("booking", f"/bookings/{booking_id}/{path}", body)
    except ServiceError as exc:
        if exc.status not in (409, 422):
            raise
        flash = ("bad", _refusal(request, exc))
    log.info("staff %s: %s on booking %s (%s)", staff.staff_id, action, booking_id, flash[0])
    if not request.headers.get("HX-Request"):  # a plain form post (no script): the page again
        return redirect(request, f"/day?site={site}&date={day}")
    return render(request, "_sheet.html", flash=flash, **await load_sheet(request, site, day))


def _refusal(request: Request, exc: ServiceError) -> str:
    """Why a service refused, in the person's language (the service's own words are English)."""
    field = exc.field or ""
    if exc.status == 409:
        return t(
            request, "Not done: it conflicts with the booking's state or with another booking."
        )
    if field.startswith("starts_at"):
        return t(request, "Not done: that time is not possible at this site.")
    if field in ("reason", "driver_name", "ride_status"):
        return t(request, "Not done: please fill in the form.")
    return t(request, "Not done: the service refused it.")


@router.get("/live/day")
async def live_day(
    request: Request, site: UUID, day: Day, staff: Staff = Depends(watching)
) -> StreamingResponse:
    """Server-sent events for an open day sheet: `changed` (read the sheet again),
    `confirmed-<booking id>` (the patient confirmed: the cell to show), `signed-out`."""
    sheet = await api(request).get("booking", f"/sites/{site}/sheet", **{"from": day.isoformat()})
    bookings = {UUID(b["id"]) for b in sheet["bookings"]}
    patients = {UUID(b["patient_id"]) for b in sheet["bookings"]}

    def wants(env: Envelope[Any]) -> bool:
        payload = env.payload
        return (env.patient_id in patients or getattr(payload, "booking_id", None) in bookings
                or getattr(payload, "site_id", None) == site)

    hub = request.app.state.hub
    stream = hub.open(staff.clinic_id, wants)
    chip = bytes(render(request, "_confirmed.html").body).decode().strip().replace("\n", " ")
    poll = request.app.state.runtime.settings.live_poll_seconds

    async def events() -> AsyncIterator[str]:
        try:
            yield "retry: 3000\n: connected\n\n"
            while True:
                try:
                    env = await asyncio.wait_for(stream.queue.get(), timeout=poll)
                except TimeoutError:
                    if not await sessions.still_signed_in(request, staff):
                        yield "event: signed-out\ndata: idle\n\n"
                        return
                    yield ": keep-alive\n\n"
                    continue
                if env.event_type == "PatientConfirmed":
                    yield f"event: confirmed-{env.payload.booking_id}\ndata: {chip}\n\n"
                    continue
                if env.patient_id is not None:
                    patients.add(env.patient_id)
                booking_id = getattr(env.payload, "booking_id", None)
                if booking_id is not None:
                    bookings.add(booking_id)
                yield f"event: changed\ndata: {json.dumps(env.event_type)}\n\n"
        finally:
            hub.close(stream)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"X-Accel-Buffering": "no"})
