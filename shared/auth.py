"""API keys per clinic network, with roles, for every service's HTTP API. A key only ever
sees its own network's data: another network's ids answer 404, exactly like ids that do not
exist. Booking issues keys and publishes `ApiKeyIssued`/`ApiKeyRevoked` (hashes only); the
other services keep a copy in their own `api_keys` table.

People sign in instead (booking's `/auth/sign-in`) and send their short-lived token as
`Authorization: Bearer <token>` (see shared/tokens.py): the same roles and tenant rules, and
the person, not a shared key, is the actor of what they do."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
from fastapi import Depends, FastAPI, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from shared import tokens
from shared.audit import OPERATOR, act_as
from shared.consumer import Handler
from shared.db import Connection, Queries
from shared.events import Envelope, Event
from shared.events.booking import ApiKeyIssued, ApiKeyRevoked
from shared.events.staff import StaffSessionEnded, StaffTokenKeyIssued

Q = Queries(Path(__file__).with_name("auth.sql"))
ROLES = ("admin", "scheduler", "clinician", "ops", "read-only", "privacy")
READ = ("admin", "scheduler", "clinician", "ops", "read-only")
AUDIT = ("admin", "privacy")
"""Who reads the audit trail: the network's admins and its privacy officers (the `privacy`
role reads nothing else)."""
SCHEDULE = ("admin", "scheduler")
CARE = ("admin", "scheduler", "clinician")
ADMIN = ("admin",)

_api_key = APIKeyHeader(name="X-API-Key", auto_error=False,
                        description="A clinic network's API key")
_bearer = HTTPBearer(auto_error=False, description="A staff member's sign-in token")
_admin_token = APIKeyHeader(name="X-Admin-Token", auto_error=False,
                            description="Platform operator token (creates clinic networks)")


@dataclass(frozen=True)
class Principal:
    clinic_id: UUID
    role: str
    label: str
    staff_id: UUID | None = None
    """The signed-in person (None for an API key)."""

    @property
    def actor(self) -> str:
        """Who did it, for audit fields: the key's label and role, or the person's name,
        role and staff id; never a secret."""
        if self.staff_id is not None:
            return f"{self.label} ({self.role}, staff {self.staff_id})"
        return f"{self.label} ({self.role})"


def new_key() -> tuple[str, str]:
    """A new API key and the hash stored for it."""
    key = "kcb_" + secrets.token_urlsafe(32)
    return key, hash_key(key)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


KEY_CACHE_SECONDS = 10.0


async def _lookup(request: Request, key_hash: str) -> asyncpg.Record | None:
    """The key's row, cached for a few seconds per process (a revoked key stops working
    within KEY_CACHE_SECONDS)."""
    cache: dict[str, tuple[asyncpg.Record, float]] = request.app.state.__dict__.setdefault(
        "api_key_cache", {})
    now = time.monotonic()
    hit = cache.get(key_hash)
    if hit is not None and hit[1] > now:
        return hit[0]
    row: asyncpg.Record | None = await request.app.state.runtime.db.fetchrow(
        Q.api_key_by_hash, key_hash)
    if row is not None:  # unknown keys are not cached: a new key works at once
        if len(cache) > 10_000:
            cache.clear()
        cache[key_hash] = (row, now + KEY_CACHE_SECONDS)
    return row


def forget_cached_keys(app: FastAPI) -> None:
    """Drop this process's cached keys (after a revocation)."""
    app.state.__dict__.get("api_key_cache", {}).clear()


def require(*roles: str) -> Any:  # a `Depends`
    """A dependency admitting API keys, or people's sign-in tokens, with one of `roles` (401
    without a valid key or token, 403 if the role may not do this)."""

    async def dependency(
        request: Request,
        key: str | None = Security(_api_key),
        bearer: HTTPAuthorizationCredentials | None = Security(_bearer),
    ) -> Principal:
        if bearer is not None and not key:
            who = await _person(request, bearer.credentials)
        else:
            if not key:
                raise HTTPException(401, "an X-API-Key header or a sign-in token is required")
            row = await _lookup(request, hash_key(key))
            if row is None:
                raise HTTPException(401, "unknown or revoked API key")
            who = Principal(row["clinic_id"], row["role"], row["label"])
        request.state.principal = who  # the actor of the audit entry, refused or not
        if who.role not in roles:
            raise HTTPException(403, f"the {who.role} role may not do this")
        return who

    return Depends(dependency)


async def _person(request: Request, token: str) -> Principal:
    """The signed-in person a bearer token stands for (401 if it is not valid here)."""
    try:
        claims = await tokens.verify(request.app.state.runtime.db, token)
    except tokens.BadToken:
        raise HTTPException(401, "invalid, expired or signed-out token") from None
    if claims.role not in ROLES:
        raise HTTPException(401, "invalid, expired or signed-out token")
    return Principal(claims.clinic_id, claims.role, claims.name, staff_id=claims.staff_id)


async def require_operator(request: Request, token: str | None = Security(_admin_token)) -> None:
    act_as(request, OPERATOR)
    expected = getattr(request.app.state.runtime.settings, "admin_token", "")
    if not expected:
        raise HTTPException(403, "creating clinic networks is disabled (no BOOKING_ADMIN_TOKEN)")
    if not token or not hmac.compare_digest(token.encode(), expected.encode()):
        raise HTTPException(401, "a valid X-Admin-Token header is required")


async def on_api_key_issued(conn: Connection, env: Envelope[ApiKeyIssued]) -> None:
    """Keep a copy of a key issued by booking (consumer handler for `ApiKeyIssued`)."""
    p = env.payload
    await conn.execute(Q.copy_api_key, p.key_id, env.clinic_id, p.key_hash, p.role, p.label)


async def on_api_key_revoked(conn: Connection, env: Envelope[ApiKeyRevoked]) -> None:
    """Stop a revoked key (consumer handler for `ApiKeyRevoked`)."""
    await conn.execute(Q.revoke_api_key_copy, env.payload.key_id, env.clinic_id)


def api_key_handlers() -> dict[type[Event], Handler]:
    """Consumer handlers that keep a service's copy of the API keys current, and of what
    verifies people's tokens (the networks' public keys, the sessions that ended)."""
    return {ApiKeyIssued: on_api_key_issued, ApiKeyRevoked: on_api_key_revoked,
            StaffTokenKeyIssued: tokens.on_token_key_issued,
            StaffSessionEnded: tokens.on_session_ended}
