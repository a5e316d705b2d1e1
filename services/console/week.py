"""The week calendar of a site: its sessions and free slots (booking's availability) for seven
local days, and booking from a free slot: find a patient by name or number (or register one,
with SMS consent and a ride contact), choose the session type, book one session or an
induction series (proposed from the free slots, booked all or nothing)."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from starlette.datastructures import FormData

from services.console import labels
from services.console.services import ServiceError
from services.console.sessions import Staff
from services.console.web import api, checked_form, render, role, signed_in, t
from shared.auth import SCHEDULE

router = APIRouter()
Day = Annotated[date | None, Query(alias="date")]
SERIES = {"iv_infusion": (6, 21), "im_injection": (6, 21), "esketamine_nasal": (8, 28)}
"""Session type -> (sessions, within days): the built-in plan templates' inductions."""


def _uuid(value: str | None) -> str | None:
    """An id from a form field, or None (empty or not an id)."""
    try:
        return str(UUID(value)) if value else None
    except ValueError:
        return None


def _monday(day: date) -> date:
    return day - timedelta(days=day.isoweekday() - 1)


def free_times(slots: list[dict[str, Any]]) -> dict[date, list[str]]:
    """Free local start times (HH:MM) by local day, once each whatever the room."""
    by_day: dict[date, list[str]] = {}
    for s in slots:
        local = s["starts_at_local"]
        times = by_day.setdefault(date.fromisoformat(local[:10]), [])
        if local[11:16] not in times:
            times.append(local[11:16])
    return by_day


@router.get("/week")
async def week_page(request: Request, site: UUID | None = None, day: Day = None,
                    session_type: str = "iv_infusion", provider: str | None = None,
                    staff: Staff = Depends(signed_in)) -> HTMLResponse:
    """Seven days from the Monday of `date` at a site (or one provider there): sessions and
    free slots."""
    client = api(request)
    if site is None:
        listed = await client.get("booking", "/sites", limit=1)
        if not listed["items"]:
            return render(request, "empty.html", nav="week", title=t(request, "Week"),
                          message=t(request, "This network has no site yet."))
        site = UUID(listed["items"][0]["id"])
    if session_type not in labels.SESSION_TYPES:
        session_type = "iv_infusion"
    first = _monday(day or date.today())
    last = first + timedelta(days=6)
    sheet, free = await asyncio.gather(
        client.get("booking", f"/sites/{site}/sheet",
                   **{"from": first.isoformat(), "to": last.isoformat()}),
        client.get("booking", f"/sites/{site}/availability", session_type=session_type,
                   step_minutes=30, **{"from": first.isoformat(), "to": last.isoformat()}))
    tz = sheet["site"]["timezone"]
    days: dict[date, dict[str, list[Any]]] = {
        first + timedelta(days=i): {"booked": [], "free": []} for i in range(7)}
    wanted = _uuid(provider)
    for b in sheet["bookings"]:
        if b["status"] in ("booked", "arrived", "fulfilled") and wanted in (None, b["provider_id"]):
            local = datetime.fromisoformat(b["starts_at"]).astimezone(ZoneInfo(tz))
            days.setdefault(local.date(), {"booked": [], "free": []})["booked"].append(b)
    slots = [s for s in free["slots"] if wanted in (None, s["provider_id"])]
    for d, times in free_times(slots).items():
        if d in days:
            days[d]["free"] = times
    for lists in days.values():
        lists["booked"].sort(key=lambda b: b["starts_at"])
    return render(request, "week.html", nav="week", site=sheet["site"], sites=sheet["sites"],
                  days=sorted(days.items()), session_type=session_type, first=first,
                  providers=sheet["providers"], provider=wanted,
                  previous=first - timedelta(days=7), next=first + timedelta(days=7))


@router.get("/week/book")
async def booking_form(
    request: Request,
    site: UUID,
    at: str,
    session_type: str = "iv_infusion",
    provider: str | None = None,
    staff: Staff = Depends(signed_in),
) -> HTMLResponse:
    """The booking form for a free slot (no call to the services)."""
    count, within = SERIES.get(session_type, (1, 1))
    return render(request, "_book.html", site_id=site, at=at[:16], session_type=session_type,
                  provider=_uuid(provider),
                  series=session_type in SERIES, count=count, within=within)


@router.post("/week/find-patient")
async def find_patient(request: Request, staff: Staff = Depends(checked_form)) -> HTMLResponse:
    """Patients matching a name or number (a POST: names and numbers stay out of URLs)."""
    q = str((await request.form()).get("q", "")).strip()
    found = []
    if len(q) >= 2:
        found = await api(request).post("booking", "/patients/search", {"q": q[:100]})
    return render(request, "_patients_found.html", found=found, q=q)


def _new_patient(form: FormData) -> dict[str, Any]:
    body: dict[str, Any] = {
        "given_name": str(form.get("given_name", "")).strip(),
        "family_name": str(form.get("family_name", "")).strip(),
        "phone": str(form.get("phone", "")).strip(),
        "language": form.get("language") or "en",
        "sms_consent": form.get("sms_consent") == "yes",
        "sms_consent_source": "told staff (console)" if form.get("sms_consent") == "yes" else None,
    }
    if str(form.get("ride_name", "")).strip():
        body["ride_contact"] = {"name": str(form.get("ride_name")).strip(),
                                "phone": str(form.get("ride_phone", "")).strip(),
                                "sms_consent": form.get("ride_consent") == "yes"}
    return body


def propose(at: datetime, count: int, within: int, free: dict[date, list[str]]) -> list[str]:
    """A series of `count` local start times within `within` days from `at`, spread evenly:
    on each target day the free time nearest to `at`'s time of day (else a nearby day)."""
    times = [at.strftime("%Y-%m-%dT%H:%M")]
    wanted = at.hour * 60 + at.minute
    used = {at.date()}
    for i in range(1, count):
        target = at.date() + timedelta(days=round(i * (within - 1) / max(1, count - 1)))
        for shift in (0, 1, -1, 2, -2):
            d = target + timedelta(days=shift)
            if d in used or not free.get(d):
                continue
            best = min(free[d], key=lambda hm: abs(int(hm[:2]) * 60 + int(hm[3:]) - wanted))
            times.append(f"{d.isoformat()}T{best}")
            used.add(d)
            break
    return times


@router.post("/week/propose")
async def propose_booking(request: Request, staff: Staff = role(*SCHEDULE)) -> HTMLResponse:
    """What would be booked: one session, or the series proposed from the free slots."""
    form = await request.form()
    site, session_type = str(form.get("site")), str(form.get("session_type"))
    at = datetime.fromisoformat(str(form.get("at")))
    times = [at.strftime("%Y-%m-%dT%H:%M")]
    if form.get("series") == "yes":
        count = max(2, min(12, int(str(form.get("count") or 6))))
        within = max(count, min(60, int(str(form.get("within") or 21))))
        free = await api(request).get(
            "booking",
            f"/sites/{site}/availability",
            session_type=session_type,
            step_minutes=30,
            **{
                "from": at.date().isoformat(),
                "to": (at.date() + timedelta(days=within - 1)).isoformat(),
            },
        )
        chosen = _uuid(str(form.get("provider") or ""))
        times = propose(at, count, within, free_times(
            [s for s in free["slots"] if chosen in (None, s["provider_id"])]))
    return render(
        request,
        "_proposal.html",
        times=times,
        form=dict(form),
        complete=len(times) == int(str(form.get("count") or 1)) or form.get("series") != "yes",
    )


@router.post("/week/book")
async def book(request: Request, staff: Staff = role(*SCHEDULE)) -> HTMLResponse:
    """Register the patient if new, then book (a series all or nothing)."""
    form = await request.form()
    client = api(request)
    times = form.getlist("times")
    try:
        patient_id = str(form.get("patient_id") or "")
        if not patient_id:
            patient_id = (await client.post("booking", "/patients", _new_patient(form)))["id"]
        body: dict[str, Any] = {"patient_id": patient_id, "site_id": str(form.get("site")),
                "session_type": str(form.get("session_type"))}
        if _uuid(str(form.get("provider") or "")):
            body["provider_id"] = _uuid(str(form.get("provider")))
        if len(times) > 1:
            booked = (await client.post("booking", "/bookings/series",
                                        {**body, "starts_at": times}))["bookings"]
        else:
            booked = [await client.post("booking", "/bookings", {**body, "starts_at": times[0]})]
    except ServiceError as exc:
        if exc.status not in (409, 422):
            raise
        return render(request, "_booked.html", error=_why(request, exc), booked=[])
    return render(request, "_booked.html", booked=booked, patient_id=patient_id)


def _why(request: Request, exc: ServiceError) -> str:
    field = exc.field or ""
    if exc.status == 409:
        return t(
            request,
            "Not booked: a room, a provider or the patient is taken at one of these times. "
            "Nothing was booked.",
        )
    if "phone" in field:
        return t(request, "Not booked: the mobile number is not a valid US or Canadian number.")
    if field.startswith("starts_at"):
        return t(
            request,
            "Not booked: one of the times is not possible at this site. Nothing was booked.",
        )
    if field == "patient_id":
        return t(request, "Not booked: a dosing session needs SMS consent or a ride contact.")
    return t(request, "Not booked: please check the form.")
