"""Network settings, for admins: staff and their roles (add a person: their one-time
enrolment code is shown once; change a role; disable; reset an enrolment), sites with their
hours, closures and rooms, providers and their hours, the texting policy, and the network's
own words for its texts (template overrides: previewed, then saved as a new version). Three
calls to show it (booking's set-up, the notifier's policy and templates); a change is one
more."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.datastructures import FormData

from services.console import labels
from services.console.services import ServiceError
from services.console.sessions import Staff
from services.console.web import api, render, role, t, viewer
from shared.auth import ADMIN

router = APIRouter()
TEXT_KINDS = tuple(labels.TEXT_KINDS)


async def _page(request: Request, flash: tuple[str, str] | None = None,
                enrolment: dict[str, Any] | None = None, status_code: int = 200,
                template: dict[str, Any] | None = None) -> HTMLResponse:
    client = api(request)
    network, policy, templates = await asyncio.gather(
        client.get("booking", "/network"), client.get("notifier", "/policy"),
        client.get("notifier", "/templates"))
    site_names = {s["id"]: s["name"] for s in network["sites"]}
    return render(request, "network.html", status_code, nav="network", network=network,
                  policy=policy, site_names=site_names, flash=flash, enrolment=enrolment,
                  kinds=TEXT_KINDS, weekdays=labels.WEEKDAYS, roles=labels.ROLES,
                  templates=templates, override=template or {})


@router.post("/network/template")
async def change_template(request: Request, staff: Staff = role(*ADMIN)) -> HTMLResponse:
    """Preview (`action=preview`) or save the network's own words for a kind of text in a
    language; the page again with the preview, or what refused them."""
    form = await request.form()
    f = {k: str(v).strip() for k, v in form.items()}
    body = {"kind": f.get("kind", ""), "language": f.get("language", ""),
            "body": " ".join(f.get("body", "").split()) or None,  # a text is one line
            "accept_ucs2": f.get("accept_ucs2") == "yes"}
    shown = {**body, "body": body["body"] or ""}
    try:
        if f.get("action") == "preview":
            shown["preview"] = await api(request).post("notifier", "/templates/preview", body)
            return await _page(request, template=shown)
        await api(request).post("notifier", "/templates", body)
    except ServiceError as exc:
        if exc.status not in (404, 409, 422):
            raise
        return await _page(request, ("bad", t(request, "Not done: please check the form.")
                                     + (f" ({exc.message})" if exc.message else "")),
                           status_code=exc.status, template=shown)
    return await _page(request, ("ok", t(request, "Saved.")))


@router.get("/network")
async def network_page(request: Request, staff: Staff = viewer(*ADMIN)) -> HTMLResponse:
    return await _page(request)


def _hours(form: FormData) -> list[dict[str, Any]]:
    """Opening (or working) hours from a form: the same hours on each ticked weekday."""
    days = [int(str(d)) for d in form.getlist("weekday") if str(d).isdigit()]
    opens, closes = str(form.get("opens") or "08:00"), str(form.get("closes") or "18:00")
    return [{"weekday": d, "opens": opens, "closes": closes} for d in days]


def _request_of(change: str, form: FormData) -> tuple[str, str, dict[str, Any] | None]:
    """(service, path, body) of a settings change from its form."""
    f = {k: str(v).strip() for k, v in form.items()}
    if change == "staff":
        return "booking", "/staff", {"name": f.get("name", ""), "email": f.get("email", ""),
                                     "role": f.get("role", ""), "language": f.get("language", "en")}
    if change == "role":
        return "booking", f"/staff/{f.get('staff_id')}/role", {"role": f.get("role", "")}
    if change in ("disable", "enrolment"):
        return "booking", f"/staff/{f.get('staff_id')}/{change}", None
    if change == "site":
        return "booking", "/sites", {
            "name": f.get("name", ""), "address": f.get("address", ""), "phone": f.get("phone", ""),
            "timezone": f.get("timezone", ""), "default_language": f.get("default_language", "en"),
            "region": f.get("region") or None, "hours": _hours(form)}
    if change == "closure":
        return "booking", f"/sites/{f.get('site_id')}/closures", {
            "first_day": f.get("first_day", ""), "last_day": f.get("last_day", ""),
            "reason": f.get("reason") or None}
    if change == "room":
        return "booking", "/rooms", {"site_id": f.get("site_id", ""), "name": f.get("name", "")}
    if change == "provider":
        hours = [{"site_id": f.get("site_id", ""), "weekday": h["weekday"], "opens": h["opens"],
                  "closes": h["closes"]} for h in _hours(form)]
        return "booking", "/providers", {"name": f.get("name", ""), "hours": hours}
    if change == "policy":
        return "notifier", "/policy", {
            "quiet_hours_start": int(f.get("quiet_hours_start") or 21),
            "quiet_hours_end": int(f.get("quiet_hours_end") or 8),
            "daily_cap": int(f.get("daily_cap") or 1), "weekly_cap": int(f.get("weekly_cap") or 3),
            "critical_past_caps": f.get("critical_past_caps") == "yes",
            "disabled_kinds": [k for k in form.getlist("disabled_kinds") if k in TEXT_KINDS]}
    raise KeyError(change)


@router.post("/network/{change}")
async def change_network(request: Request, change: str,
                         staff: Staff = role(*ADMIN)) -> HTMLResponse:
    """One change to the network's set-up; the page again with what happened (a new
    person's enrolment code shown once, here)."""
    form = await request.form()
    try:
        service, path, body = _request_of(change, form)
    except (KeyError, ValueError):
        return await _page(request, ("bad", t(request, "Not done: please check the form.")),
                           status_code=422)
    try:
        done = await api(request).post(service, path, body)
    except ServiceError as exc:
        if exc.status not in (404, 409, 422):
            raise
        return await _page(
            request,
            (
                "bad",
                t(request, "Not done: please check the form.")
                + (f" ({exc.field})" if exc.field else ""),
            ),
            status_code=exc.status,
        )
    enrolment = done if change in ("staff", "enrolment") else None
    return await _page(request, ("ok", t(request, "Saved.")), enrolment=enrolment)
