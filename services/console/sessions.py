"""Who is signed in, in which browser. The session cookie is HttpOnly, SameSite=Strict, and
Secure (named `__Host-...`) unless the console is reached on localhost over plain HTTP. Its
value is random; the console stores only its SHA-256, with the person's current sign-in token
(refreshed from booking while the session is in use) and the CSRF token every form carries.

A session idle longer than `CONSOLE_IDLE_MINUTES` (15) is ended at the next request: the
row is deleted and booking's session is signed out, so the cookie and the token are useless
from then on. Requests that only check the session (the idle timer, live updates) do not
count as activity."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from fastapi import Request
from fastapi.responses import Response

from shared.db import Queries
from shared.runtime import db_of as _db

log = logging.getLogger(__name__)
COOKIE = "kcb_session"
CSRF_COOKIE = "kcb_csrf"
Q = Queries(Path(__file__).with_name("sessions.sql"))


@dataclass
class Staff:
    """The signed-in person, as the console knows them."""

    id_hash: str
    csrf_token: str
    staff_id: UUID
    clinic_id: UUID
    session_id: UUID
    name: str
    role: str
    language: str
    token: str
    token_expires_at: datetime
    last_seen_at: datetime

    def can(self, *roles: str) -> bool:
        return self.role in roles


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def secure(request: Request) -> bool:
    """Whether cookies must be Secure here."""
    mode = request.app.state.runtime.settings.secure_cookies
    if mode != "auto":
        value: bool = mode == "always"
        return value
    local = request.url.hostname in ("localhost", "127.0.0.1", "::1")
    return not (local and request.url.scheme == "http")


def cookie_name(request: Request, base: str) -> str:
    return f"__Host-{base}" if secure(request) else base


def set_cookie(request: Request, response: Response, base: str, value: str,
               max_age: int | None = None) -> None:
    response.set_cookie(cookie_name(request, base), value, max_age=max_age, path="/",
                        httponly=True, samesite="strict", secure=secure(request))


def clear_cookie(request: Request, response: Response, base: str) -> None:
    response.delete_cookie(cookie_name(request, base), path="/", httponly=True,
                           samesite="strict", secure=secure(request))


def _idle(request: Request) -> timedelta:
    return timedelta(minutes=request.app.state.runtime.settings.idle_minutes)


async def start(request: Request, response: Response, signed: dict[str, Any]) -> None:
    """A new session for a person booking signed in; its cookie on `response`."""
    value = secrets.token_urlsafe(32)
    person = signed["staff"]
    await _db(request).execute(
        Q.insert_session, _hash(value), secrets.token_urlsafe(32), UUID(str(person["id"])),
        UUID(str(person["clinic_id"])), UUID(str(signed["session_id"])), person["name"],
        person["role"], person["language"], signed["token"],
        datetime.fromisoformat(signed["expires_at"]))
    await _db(request).execute(Q.delete_idle_sessions, _idle(request))
    set_cookie(request, response, COOKIE, value)


async def current(request: Request, *, activity: bool = True) -> Staff | None:
    """The signed-in person of this request, or None (no cookie, unknown, or idle too long:
    then the session is ended). `activity`: the request counts as the person's activity."""
    if hasattr(request.state, "staff"):
        seen: Staff | None = request.state.staff
        return seen
    value = request.cookies.get(cookie_name(request, COOKIE))
    staff = None
    if value:
        row = await _db(request).fetchrow(Q.session_by_hash, _hash(value))
        if row is not None:
            staff = Staff(**{k: row[k] for k in Staff.__dataclass_fields__})
            if datetime.now(UTC) - staff.last_seen_at > _idle(request):
                log.info("session of staff %s ended after %s idle minutes", staff.staff_id,
                         request.app.state.runtime.settings.idle_minutes)
                await end(request, staff)
                request.state.ended = "idle"
                staff = None
            elif activity:
                await _db(request).execute(Q.touch_session, staff.id_hash)
    request.state.staff = staff
    return staff


async def still_signed_in(request: Request, staff: Staff) -> bool:
    """Whether a session seen earlier in this request is still open (a long-lived stream
    asks now and then; not activity): ended when it has been idle too long."""
    row = await _db(request).fetchrow(Q.last_seen, staff.id_hash)
    if row is None:
        return False
    if datetime.now(UTC) - row["last_seen_at"] > _idle(request):
        await end(request, staff)
        return False
    return True


async def end(request: Request, staff: Staff) -> None:
    """Delete the session here and sign it out at booking (best effort: the token expires
    within minutes anyway)."""
    await _db(request).execute(Q.delete_session, staff.id_hash)
    try:
        await request.app.state.services.sign_out(staff.token)
    except Exception as exc:  # booking unreachable: the session here is gone all the same
        log.warning("booking sign-out failed (%s)", type(exc).__name__)


async def keep_token_fresh(request: Request, staff: Staff) -> None:
    """Refresh the person's token from booking once it has less than
    `CONSOLE_TOKEN_REFRESH_SECONDS` to live."""
    left = (staff.token_expires_at - datetime.now(UTC)).total_seconds()
    if left > request.app.state.runtime.settings.token_refresh_seconds:
        return
    fresh = await request.app.state.services.refresh(staff.token)
    staff.token = fresh["token"]
    staff.token_expires_at = datetime.fromisoformat(fresh["expires_at"])
    staff.role, staff.name = fresh["staff"]["role"], fresh["staff"]["name"]
    await _db(request).execute(Q.refresh_token, staff.id_hash, staff.token,
                               staff.token_expires_at, staff.role, staff.name)


async def set_language(request: Request, staff: Staff, language: str) -> None:
    staff.language = language
    await _db(request).execute(Q.set_language, staff.id_hash, language)


def csrf_ok(request: Request, staff: Staff | None, submitted: object) -> bool:
    """Whether the submitted CSRF token (form field or X-CSRF-Token header) is this
    session's; before sign-in, whether it matches the CSRF cookie (double submit). A form
    field that is no text (a file) counts as missing."""
    if not isinstance(submitted, str) or not submitted:
        submitted = request.headers.get("X-CSRF-Token") or ""
    expected = staff.csrf_token if staff is not None else \
        request.cookies.get(cookie_name(request, CSRF_COOKIE), "")
    return bool(expected) and hmac.compare_digest(submitted.encode(), expected.encode())
