"""The public booking page of a clinic network, `/book/<slug>`: no account. A visitor picks a
free 15-minute consultation (phone or video) of the next 14 days, shown in their time zone
(which they may choose), gives their name, mobile number, preferred language and consent to
texts (the exact wording, shared/consent.py), gets a 6-digit code by text and books with it.
Everything goes through booking's public API (services/booking/online_api.py), which the
console reaches as a trusted proxy (it forwards the visitor's address for the limits).

Plain HTML forms (no JavaScript needed), in English, French or Spanish (`?lang=`, else the
browser's language). The form carries a CSRF double-submit token like the sign-in page, and
a honeypot field: a form with it filled is answered like any other and nothing is sent. The
logs name the network and the request, never a name, a number or a code."""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from datetime import date, datetime
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

from babel import dates as babel_dates
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.console import i18n, sessions, web
from services.console.auth_pages import anonymous_csrf, anonymous_form
from services.console.i18n import N_
from services.console.services import ServiceError
from shared.consent import consent_wording
from shared.proxies import client_address
from shared.zones import allowed_zones

log = logging.getLogger(__name__)
router = APIRouter()
SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
HONEYPOT = "website"
FIELDS = ("starts_at", "mode", "given_name", "family_name", "phone", "language", "consent")
PROBLEMS = {
    "starts_at": N_("Choose a time that is still free."),
    "mode": N_("Choose phone or video."),
    "given_name": N_("Give your first name."),
    "family_name": N_("Give your last name."),
    "phone": N_("Give a mobile number of the US or Canada."),
    "language": N_("Choose a language."),
    "consent": N_("Tick the box: the code comes by text."),
    "timezone": N_("Choose a time zone."),
}
CODE_PROBLEMS = {
    422: N_("That code is not right, or it expired. Try again, or ask for a new one."),
    429: N_("Too many wrong codes. Ask for a new one."),
    409: N_("This code was already used: your consultation is booked."),
}
TAKEN = N_("That time can no longer be booked. Please choose another time.")
"""A 409 on `starts_at`: the time was taken meanwhile (by anyone: the visitor is not told
whether a patient with their number and name exists)."""


def _language(request: Request) -> str:
    chosen = request.query_params.get("lang") or request.cookies.get("kcb_public_lang")
    if chosen in i18n.PUBLIC_LANGUAGES:
        return chosen
    return i18n.choose(request.headers.get("accept-language"), i18n.PUBLIC_LANGUAGES)


def _page(request: Request, template: str, language: str, status_code: int = 200,
          **context: Any) -> Response:
    """A public page in `language`, with the anonymous CSRF token (and its cookie)."""
    csrf, new = anonymous_csrf(request)
    env = web.environments()[language]
    html = env.get_template(template).render(request=request, staff=None, csrf=csrf, **context)
    response = HTMLResponse(html, status_code=status_code)
    response.headers["X-Console-Service-Calls"] = str(getattr(request.state, "service_calls", 0))
    if new:
        sessions.set_cookie(request, response, sessions.CSRF_COOKIE, csrf)
    return response


def _not_found(request: Request, language: str) -> Response:
    return _page(request, "book_missing.html", language, 404)


async def _network(request: Request, slug: str) -> dict[str, Any] | None:
    """The network's public page data from booking (None: no such network)."""
    if not SLUG.match(slug) or len(slug) > 40:
        return None
    try:
        found: dict[str, Any] = await request.app.state.services.call(
            "GET", "booking", f"/online/{slug}", request=request)
        return found
    except ServiceError as exc:
        if exc.status in (404, 422):
            return None
        raise


def _days(slots: list[str], tz: str, language: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """The free times by day in the visitor's time zone: (day, [(value, time), ...])."""
    locale = i18n.PUBLIC_LANGUAGES[language]
    zone = ZoneInfo(tz)
    days: dict[date, list[tuple[str, str]]] = defaultdict(list)
    for value in slots:
        local = datetime.fromisoformat(value).astimezone(zone)
        days[local.date()].append((value, babel_dates.format_time(local, "short", locale=locale)))
    return [(babel_dates.format_date(day, "full", locale=locale), times)
            for day, times in sorted(days.items())]


def _form_page(request: Request, slug: str, network: dict[str, Any], language: str,
               tz: str | None, values: dict[str, str] | None = None,
               problems: dict[str, str] | None = None,
               status_code: int = 200) -> Response:
    zones = sorted(allowed_zones())
    tz = tz if tz in zones else (network["timezones"] or ["America/New_York"])[0]
    values = values or {}
    return _page(request, "book.html", language, status_code, slug=slug, network=network,
                 tz=tz, zones=zones, days=_days(network["slots"], tz, language),
                 values=values, problems=problems or {},
                 consent=consent_wording(network["consent_version"], language, network["name"]))


@router.get("/book/{slug}")
async def booking_page(request: Request, slug: str, tz: str | None = None) -> Response:
    """The free consultations and the form."""
    language = _language(request)
    network = await _network(request, slug)
    if network is None:
        return _not_found(request, language)
    return _form_page(request, slug, network, language, tz)


@router.post("/book/{slug}")
async def ask_for_code(request: Request, slug: str) -> Response:
    """The form: a code is texted to the number (or the form comes back with what to fix)."""
    form = await anonymous_form(request)
    language = str(form.get("lang", "")) if form.get("lang") in i18n.PUBLIC_LANGUAGES \
        else _language(request)
    if str(form.get(HONEYPOT, "")).strip():
        log.info("booking page of %s: honeypot filled, nothing sent", slug)
        return _to_code_page(slug, uuid4(), language)
    network = await _network(request, slug)
    if network is None:
        return _not_found(request, language)
    values = {name: str(form.get(name, "")).strip() for name in FIELDS}
    tz = str(form.get("tz", ""))
    body = {**values, "consent": values["consent"] == "yes", "timezone": tz,
            "consent_version": network["consent_version"],
            "user_agent": request.headers.get("user-agent", "")[:500]}
    settings = request.app.state.runtime.settings
    try:
        asked = await request.app.state.services.call(
            "POST", "booking", f"/online/{slug}/requests", request=request, json=body,
            headers={"X-Forwarded-For": client_address(request, settings.trusted_proxies)})
    except ServiceError as exc:
        if exc.status == 429:
            return _form_page(request, slug, network, language, tz, values, {
                "form": N_("Too many codes were asked for. Try again in an hour.")}, 429)
        if exc.status == 503:  # booking has no key to seal codes with (ONLINE_CODE_KEY)
            return _form_page(request, slug, network, language, tz, values, {
                "form": N_("Booking online is not available right now. Please call us.")}, 503)
        if exc.status not in (404, 409, 422):
            raise
        field = exc.field if exc.field in PROBLEMS else "form"
        return _form_page(request, slug, network, language, tz, values,
                          {field: PROBLEMS.get(field, N_("Check the form and try again."))}, 422)
    log.info("booking page of %s: code asked for (request %s)", slug, asked["request_id"])
    return _to_code_page(slug, asked["request_id"], language)


def _to_code_page(slug: str, request_id: UUID | str, language: str) -> Response:
    return RedirectResponse(f"/book/{slug}/code/{request_id}?lang={language}", status_code=303)


@router.get("/book/{slug}/code/{request_id}")
async def code_page(request: Request, slug: str, request_id: UUID) -> Response:
    """Where the visitor types the code they were texted."""
    return _page(request, "book_code.html", _language(request), slug=slug,
                 request_id=request_id, problem=None, taken=False)


@router.post("/book/{slug}/code/{request_id}")
async def book_with_code(request: Request, slug: str, request_id: UUID) -> Response:
    """The code: the consultation is booked (or the code page again, saying why not)."""
    form = await anonymous_form(request)
    language = str(form.get("lang")) if form.get("lang") in i18n.PUBLIC_LANGUAGES \
        else _language(request)
    code = re.sub(r"\s", "", str(form.get("code", "")))[:12] or "-"
    if not SLUG.match(slug):
        return _not_found(request, language)
    try:
        booked = await request.app.state.services.call(
            "POST", "booking", f"/online/{slug}/requests/{request_id}/verify",
            request=request, json={"code": code})
    except ServiceError as exc:
        if exc.status not in (404, 409, 422, 429):
            raise
        taken = exc.status == 409 and exc.field == "starts_at"
        return _page(request, "book_code.html", language, exc.status if exc.status != 404 else 422,
                     slug=slug, request_id=request_id, taken=taken,
                     problem=TAKEN if taken else CODE_PROBLEMS.get(exc.status, CODE_PROBLEMS[422]))
    log.info("booking page of %s: booked %s", slug, booked["booking_id"])
    local = datetime.fromisoformat(booked["starts_at_local"])
    locale = i18n.PUBLIC_LANGUAGES[language]
    return _page(request, "book_done.html", language, slug=slug, mode=booked["mode"],
                 when=babel_dates.format_datetime(local, "full", locale=locale,
                                                  tzinfo=ZoneInfo(booked["timezone"])),
                 timezone=booked["timezone"])
