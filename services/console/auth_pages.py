"""Signing in and out, enrolling (password and authenticator app), the language, and the
idle timer's check. Before sign-in, forms are protected by a double-submit CSRF cookie."""

from __future__ import annotations

import base64
import logging
import secrets
from typing import Any

import segno
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from services.console import i18n, sessions
from services.console.i18n import N_
from services.console.services import ServiceError
from services.console.sessions import Staff
from services.console.web import NotAllowed, checked_form, redirect, render, t
from shared.proxies import client_address

log = logging.getLogger(__name__)
router = APIRouter()


def anonymous_csrf(request: Request) -> tuple[str, bool]:
    """The CSRF value of a browser not signed in (from its cookie, or new)."""
    value = request.cookies.get(sessions.cookie_name(request, sessions.CSRF_COOKIE))
    return (value, False) if value else (secrets.token_urlsafe(32), True)


def _anonymous_page(request: Request, template: str, status_code: int = 200,
                    **context: Any) -> Response:
    csrf, new = anonymous_csrf(request)
    response = render(request, template, status_code, csrf=csrf, **context)
    if new:
        sessions.set_cookie(request, response, sessions.CSRF_COOKIE, csrf)
    return response


async def anonymous_form(request: Request) -> dict[str, Any]:
    """A form posted by a browser not signed in, with its CSRF token (else 403)."""
    form = dict(await request.form())
    if not sessions.csrf_ok(request, None, form.get("csrf")):
        raise NotAllowed()
    return form


@router.get("/sign-in")
async def sign_in_page(request: Request, ended: str | None = None) -> Response:
    if await sessions.current(request, activity=False) is not None:
        return redirect(request, "/")
    notice = t(request, "You were signed out after a while without activity.") \
        if ended == "idle" else None
    return _anonymous_page(request, "sign_in.html", notice=notice)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    form = await anonymous_form(request)
    body = {"email": str(form.get("email", "")).strip(), "password": str(form.get("password", "")),
            "totp_code": str(form.get("totp_code", "")).strip() or None}
    settings = request.app.state.runtime.settings
    try:
        signed = await request.app.state.services.sign_in(
            body, client_address(request, settings.trusted_proxies))
    except ServiceError as exc:
        message = {429: N_("Too many failed sign-ins. Try again in 15 minutes.")}.get(
            exc.status, N_("The email, password or code is not right."))
        return _anonymous_page(request, "sign_in.html", 429 if exc.status == 429 else 401,
                               error=t(request, message), email=body["email"])
    response = redirect(request, "/")
    await sessions.start(request, response, signed)
    sessions.clear_cookie(request, response, sessions.CSRF_COOKIE)
    log.info("staff %s signed in to the console", signed["staff"]["id"])
    return response


@router.post("/sign-out")
async def sign_out(request: Request, staff: Staff = Depends(checked_form)) -> Response:
    await sessions.end(request, staff)
    response = redirect(request, "/sign-in")
    sessions.clear_cookie(request, response, sessions.COOKIE)
    return response


@router.get("/session/status")
async def session_status(request: Request) -> Response:
    """The idle timer's check (not activity): 204 while signed in, else to sign-in."""
    if await sessions.current(request, activity=False) is None:
        return Response(status_code=204, headers={"HX-Redirect": "/sign-in?ended=idle"})
    return Response(status_code=204)


@router.post("/language")
async def set_language(request: Request) -> Response:
    """Switch the UI language (the person's choice is kept by booking)."""
    staff = await sessions.current(request)
    form = dict(await request.form())
    if not sessions.csrf_ok(request, staff, form.get("csrf")):
        raise NotAllowed()
    chosen = form.get("language")
    language = chosen if isinstance(chosen, str) and chosen in i18n.LANGUAGES else "en"
    target = str(form.get("next") or "/")
    if not target.startswith("/") or target.startswith("//"):
        target = "/"
    response = redirect(request, target)
    if staff is not None:
        await request.app.state.services.call("POST", "booking", "/auth/language",
                                              token=staff.token, json={"language": language})
        await sessions.set_language(request, staff, language)
    else:
        response.set_cookie("kcb_lang", language, max_age=365 * 86400, path="/",
                            samesite="strict", secure=sessions.secure(request), httponly=True)
    return response


# --- enrolment -------------------------------------------------------------------------


@router.get("/enrol")
async def enrol_page(request: Request) -> Response:
    return _anonymous_page(request, "enrol.html", step="code")


def _qr(uri: str) -> str:
    svg = segno.make(uri, error="m").svg_inline(scale=4, dark="#000", light="#fff")
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


async def _offer(request: Request, code: str) -> dict[str, Any]:
    value: dict[str, Any] = await request.app.state.services.call(
        "POST", "booking", "/auth/enrolment", json={"code": code}
    )
    return value


@router.post("/enrol")
async def enrol_start(request: Request) -> Response:
    form = await anonymous_form(request)
    code = str(form.get("code", "")).strip()
    try:
        offer = await _offer(request, code)
    except ServiceError:
        return _anonymous_page(request, "enrol.html", 404, step="code",
                               error=t(request, "This enrolment code is unknown or expired."))
    return _anonymous_page(request, "enrol.html", step="set", code=code, offer=offer,
                           qr=_qr(offer["totp_uri"]))


@router.post("/enrol/complete")
async def enrol_complete(request: Request) -> Response:
    form = await anonymous_form(request)
    code = str(form.get("code", "")).strip()
    password = str(form.get("password", ""))
    body = {"code": code, "password": password,
            "totp_code": str(form.get("totp_code", "")).strip() or None}
    error = None
    if password != str(form.get("password_again", "")):
        error = t(request, "The two passwords differ.")
    else:
        try:
            await request.app.state.services.call("POST", "booking", "/auth/enrolment/complete",
                                                  json=body)
            return _anonymous_page(request, "enrol.html", step="done")
        except ServiceError as exc:
            error = {"password": t(request, "The password needs 12 to 128 characters, and must "
                                            "not be your email."),
                     "totp_code": t(request, "The code from the app is missing or wrong.")}.get(
                exc.field or "", t(request, "This enrolment code is unknown or expired."))
    try:
        offer = await _offer(request, code)
    except ServiceError:
        return _anonymous_page(request, "enrol.html", 404, step="code",
                               error=t(request, "This enrolment code is unknown or expired."))
    return _anonymous_page(request, "enrol.html", 422, step="set", code=code, offer=offer,
                           qr=_qr(offer["totp_uri"]), error=error)
