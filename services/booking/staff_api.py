"""HTTP API for people: staff accounts (a network's admins), enrolment, sign-in, token
refresh and sign-out. See services/booking/staff.py."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Request, Security
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.booking import staff, store
from services.booking.model import Credentials, as_dict
from services.booking.settings import BookingSettings
from services.booking.staff import (
    AddStaff,
    ChangeLanguage,
    ChangeRole,
    CompleteEnrolment,
    EnrolmentCode,
    SignIn,
)
from shared import proxies, tokens
from shared.audit import ANONYMOUS, Actor, act_as, record
from shared.auth import ADMIN, AUDIT, ROLES, Principal, require
from shared.db import Connection
from shared.runtime import db_of as _db
from shared.runtime import settings_of

router = APIRouter(tags=["staff"])
_bearer = HTTPBearer(auto_error=False, description="A staff member's sign-in token")


def _settings(request: Request) -> BookingSettings:
    settings: BookingSettings = settings_of(request)
    return settings


def client_address(request: Request) -> str:
    """Who is signing in: the peer, or, when the peer is a trusted proxy (the console), the
    last address it put in X-Forwarded-For."""
    return proxies.client_address(request, _settings(request).trusted_proxies)


async def session_claims(request: Request, bearer: HTTPAuthorizationCredentials | None =
                         Security(_bearer)) -> tokens.TokenClaims:
    """The claims of the caller's own, valid sign-in token."""
    if bearer is None:
        raise HTTPException(401, "a sign-in token is required")
    try:
        claims = await tokens.verify(_db(request), bearer.credentials)
    except tokens.BadToken:
        raise HTTPException(401, "invalid, expired or signed-out token") from None
    act_as(request, Actor("staff", claims.clinic_id, claims.staff_id, None, claims.role))
    return claims


def _json(body: Any, status_code: int = 200) -> JSONResponse:
    return JSONResponse(jsonable_encoder(body), status_code=status_code,
                        headers={"Cache-Control": "no-store"})


# --- accounts (admins) -----------------------------------------------------------------


@router.post("/staff", status_code=201)
async def add_staff(
    cmd: AddStaff, request: Request, who: Principal = require(*ADMIN)
) -> JSONResponse:
    """Add a person to the network; the answer carries their one-time enrolment code, shown
    only here (not replayed by Idempotency-Key: a second request with the same email is a 409)."""
    async with _db(request).acquire() as conn, conn.transaction():
        added = await staff.add_staff(conn, who, cmd, _settings(request).enrolment_hours)
        await record(conn, request, status=201)
        return _json(added, 201)


@router.get("/staff")
async def list_staff(request: Request, who: Principal = require(*AUDIT)) -> list[dict[str, Any]]:
    """The network's people (admins, and privacy officers: audit entries name people by id)."""
    return [as_dict(m) for m in await store.list_staff(_db(request), who.clinic_id)]


@router.get("/staff/{staff_id}")
async def get_staff(
    staff_id: UUID, request: Request, who: Principal = require(*ADMIN)
) -> dict[str, Any]:
    async with _db(request).acquire() as conn:
        return as_dict(await staff.get_staff(conn, who.clinic_id, staff_id))


@router.post("/staff/{staff_id}/role")
async def change_role(staff_id: UUID, cmd: ChangeRole, request: Request,
                      who: Principal = require(*ADMIN)) -> dict[str, Any]:
    """Change a person's role; their sessions end."""
    async with _db(request).acquire() as conn, conn.transaction():
        changed = as_dict(await staff.change_role(conn, who, staff_id, cmd))
        await record(conn, request)
        return changed


@router.post("/staff/{staff_id}/disable")
async def disable_staff(
    staff_id: UUID, request: Request, who: Principal = require(*ADMIN)
) -> dict[str, Any]:
    """Disable a person: they can no longer sign in, and their sessions end."""
    async with _db(request).acquire() as conn, conn.transaction():
        disabled = as_dict(await staff.disable(conn, who, staff_id))
        await record(conn, request)
        return disabled


@router.post("/staff/{staff_id}/enrolment")
async def reset_enrolment(
    staff_id: UUID, request: Request, who: Principal = require(*ADMIN)
) -> JSONResponse:
    """Forget a person's password and authenticator: a new one-time enrolment code."""
    async with _db(request).acquire() as conn, conn.transaction():
        reset = await staff.reset_enrolment(conn, who, staff_id, _settings(request).enrolment_hours)
        await record(conn, request)
        return _json(reset)


# --- the person ------------------------------------------------------------------------


@router.post("/auth/enrolment", tags=["sign-in"])
async def start_enrolment(cmd: EnrolmentCode, request: Request) -> JSONResponse:
    """Who an enrolment code is for, and the authenticator secret offered to them."""
    async with _db(request).acquire() as conn, conn.transaction():
        offered = await staff.start_enrolment(conn, cmd)
        await record(conn, request)
        return _json(offered)


@router.post("/auth/enrolment/complete", tags=["sign-in"])
async def complete_enrolment(cmd: CompleteEnrolment, request: Request) -> JSONResponse:
    """Set the password and the second factor (a code from the app; required for admins)."""
    async with _db(request).acquire() as conn, conn.transaction():
        done = await staff.complete_enrolment(conn, cmd)
        await record(conn, request)
        return _json(done)


@router.post("/auth/sign-in", tags=["sign-in"])
async def sign_in(cmd: SignIn, request: Request) -> JSONResponse:
    """Email, password and (when the person has one) the authenticator's code: a session
    and its short-lived token. Failures are counted per account and per address; past the
    limits the answer is 429 for the window."""
    async def audit(conn: Connection, person: Credentials | None, signed_in: bool) -> None:
        actor = ANONYMOUS if person is None else Actor(
            "staff", person.clinic_id, person.id, None, person.role)
        await record(conn, request, actor=actor, status=200 if signed_in else 401)

    body = await staff.sign_in(_db(request), cmd, client_address(request), _settings(request),
                               audit)
    return _json(body)


@router.post("/auth/refresh", tags=["sign-in"])
async def refresh(
    request: Request, claims: tokens.TokenClaims = Depends(session_claims)
) -> JSONResponse:
    """A fresh token for the caller's session, while it is open."""
    who = Principal(claims.clinic_id, claims.role, claims.name, staff_id=claims.staff_id)
    async with _db(request).acquire() as conn:
        return _json(await staff.refresh(conn, who, claims.session_id, _settings(request)))


@router.post("/auth/sign-out", status_code=204, tags=["sign-in"])
async def sign_out(
    request: Request, claims: tokens.TokenClaims = Depends(session_claims)
) -> Response:
    """End the caller's session: its tokens are refused from now on, everywhere."""
    async with _db(request).acquire() as conn, conn.transaction():
        await staff.end_sessions(conn, claims.staff_id, claims.session_id)
        await record(conn, request, status=204)
    return Response(status_code=204)


@router.get("/auth/me", tags=["sign-in"])
async def me(request: Request, who: Principal = require(*ROLES)) -> dict[str, Any]:
    """Who the caller is (a person or an API key)."""
    return {"clinic_id": who.clinic_id, "role": who.role, "name": who.label,
            "staff_id": who.staff_id, "actor": who.actor}


@router.post("/auth/language", tags=["sign-in"])
async def set_language(cmd: ChangeLanguage, request: Request,
                       claims: tokens.TokenClaims = Depends(session_claims)) -> dict[str, Any]:
    """The caller's language for the console (en or fr)."""
    async with _db(request).acquire() as conn, conn.transaction():
        await store.set_language(conn, claims.staff_id, cmd.language)
        await record(conn, request)
    return {"language": cmd.language}
