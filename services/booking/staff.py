"""People who work for a clinic network: their accounts (managed by the network's admins),
enrolment (a one-time code: the person sets their password and their authenticator app),
sign-in (password and TOTP code, rate-limited per account and per address) and sessions.

A signed-in session gets short-lived tokens (shared/tokens.py) signed with the network's
key; every service accepts them. Disabling a person, changing their role or resetting their
enrolment ends their sessions; so does signing out. Ended sessions reach plans and notifier
as `StaffSessionEnded`, the network's public key as `StaffTokenKeyIssued`.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import secrets
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal
from uuid import UUID, uuid4

import asyncpg
import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import ConfigDict, Field, field_validator

from services.booking.db import PRODUCER
from shared import tokens
from shared.auth import Principal
from shared.db import Queries
from shared.errors import Conflict, DomainError, Invalid, NotFound
from shared.events import Envelope
from shared.events.staff import StaffSessionEnded, StaffTokenKeyIssued
from shared.outbox import enqueue
from shared.validation import RequestModel

log = logging.getLogger(__name__)
Q = Queries(Path(__file__).with_name("staff.sql"))
Role = Literal["admin", "scheduler", "clinician", "ops", "read-only"]
UiLanguage = Literal["en", "fr"]
TOTP_STEP = 30
TOTP_ISSUER = "Clinic console"
_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile (t=3, m=64 MiB, p=4)


class Unauthorized(DomainError):
    status_code = 401
    code = "unauthorized"


class TooManyAttempts(DomainError):
    status_code = 429
    code = "too_many_attempts"


class _In(RequestModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class AddStaff(_In):
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    role: Role
    language: UiLanguage = "en"


class ChangeRole(_In):
    role: Role


class ChangeLanguage(_In):
    language: UiLanguage


class EnrolmentCode(_In):
    code: str = Field(min_length=10, max_length=100)


class CompleteEnrolment(EnrolmentCode):
    password: str = Field(min_length=12, max_length=128)
    totp_code: str | None = Field(None, pattern=r"^\d{6}$",
                                  description="A code from the authenticator app (admins must)")

    @field_validator("password", mode="before")
    @classmethod
    def _not_blank(cls, value):
        if isinstance(value, str) and not value.strip():
            raise ValueError("the password is blank")
        return value


class SignIn(_In):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=128)
    totp_code: str | None = Field(None, max_length=10)


def _digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _new_enrolment(hours: float) -> tuple[str, str, datetime]:
    code = secrets.token_urlsafe(24)
    return code, _digest(code), datetime.now(UTC) + timedelta(hours=hours)


# --- the network's signing key ---------------------------------------------------------


async def signing_key(conn: asyncpg.Connection, clinic_id: UUID) -> tuple[str, bytes]:
    """The network's token key (made on first use, its public half announced in the same
    transaction as `StaffTokenKeyIssued`)."""
    row = await conn.fetchrow(Q.signing_key, clinic_id)
    if row is None:
        pair = tokens.new_key_pair()
        made = await conn.fetchval(Q.insert_signing_key, pair.kid, clinic_id, pair.private_pem,
                                   pair.public_pem)
        if made is not None:
            await enqueue(conn, [Envelope.new(
                StaffTokenKeyIssued(kid=pair.kid, public_key=pair.public_pem),
                producer=PRODUCER, clinic_id=clinic_id, patient_id=None)])
        row = await conn.fetchrow(Q.signing_key, clinic_id)
    return row["kid"], bytes(row["private_key"])


# --- accounts (admins) -----------------------------------------------------------------


async def add_staff(conn: asyncpg.Connection, who: Principal, cmd: AddStaff,
                    enrolment_hours: float) -> dict:
    """A new person; the answer carries their one-time enrolment code (shown once)."""
    await signing_key(conn, who.clinic_id)
    code, digest, expires = _new_enrolment(enrolment_hours)
    row = await conn.fetchrow(Q.insert_staff, uuid4(), who.clinic_id, cmd.email, cmd.name,
                              cmd.role, cmd.language, digest, expires, who.actor)
    if row is None:
        raise Conflict("this email already signs someone in", field="email")
    log.info("staff account %s added (%s)", row["id"], cmd.role)
    return {**dict(row), "enrolment_code": code, "enrolment_expires_at": expires}


async def get_staff(conn: asyncpg.Connection, clinic_id: UUID, staff_id: UUID) -> asyncpg.Record:
    row = await conn.fetchrow(Q.get_staff, staff_id, clinic_id)
    if row is None:
        raise NotFound("unknown staff member", field="staff_id")
    return row


def _not_self(who: Principal, staff_id: UUID, what: str) -> None:
    if who.staff_id == staff_id:
        raise Conflict(f"you cannot {what} yourself: ask another admin")


async def change_role(conn: asyncpg.Connection, who: Principal, staff_id: UUID,
                      cmd: ChangeRole) -> dict:
    """A new role; the person's sessions end (they sign in again with it)."""
    _not_self(who, staff_id, "change the role of")
    current = await get_staff(conn, who.clinic_id, staff_id)
    if cmd.role == "admin" and current["enrolled"] and not current["has_totp"]:
        raise Conflict("an admin needs an authenticator app: reset their enrolment first",
                       field="role")
    await conn.execute(Q.set_role, staff_id, who.clinic_id, cmd.role)
    await end_sessions(conn, staff_id)
    return dict(await get_staff(conn, who.clinic_id, staff_id))


async def disable(conn: asyncpg.Connection, who: Principal, staff_id: UUID) -> dict:
    _not_self(who, staff_id, "disable")
    if await conn.fetchval(Q.disable_staff, staff_id, who.clinic_id) is None:
        raise NotFound("unknown staff member", field="staff_id")
    await end_sessions(conn, staff_id)
    return dict(await get_staff(conn, who.clinic_id, staff_id))


async def reset_enrolment(conn: asyncpg.Connection, who: Principal, staff_id: UUID,
                          enrolment_hours: float) -> dict:
    """Forget the person's password and authenticator; a new one-time enrolment code."""
    code, digest, expires = _new_enrolment(enrolment_hours)
    if await conn.fetchval(Q.reset_enrolment, staff_id, who.clinic_id, digest, expires) is None:
        raise NotFound("unknown staff member", field="staff_id")
    await end_sessions(conn, staff_id)
    return {**dict(await get_staff(conn, who.clinic_id, staff_id)), "enrolment_code": code,
            "enrolment_expires_at": expires}


async def end_sessions(conn: asyncpg.Connection, staff_id: UUID,
                       session_id: UUID | None = None) -> int:
    """End a person's open sessions (or one): refused here at once, elsewhere on the event."""
    ended = await conn.fetch(Q.end_sessions, staff_id, session_id)
    for s in ended:
        await tokens.end_session(conn, s["id"], s["clinic_id"], s["expires_at"])
    await enqueue(conn, [Envelope.new(
        StaffSessionEnded(session_id=s["id"], staff_id=s["staff_id"], expires_at=s["expires_at"]),
        producer=PRODUCER, clinic_id=s["clinic_id"], patient_id=None) for s in ended])
    return len(ended)


# --- enrolment (the person) ------------------------------------------------------------


async def _enrolling(conn: asyncpg.Connection, code: str) -> asyncpg.Record:
    row = await conn.fetchrow(Q.staff_by_enrolment, _digest(code))
    if row is None:
        raise NotFound("unknown or expired enrolment code", field="code")
    return row


async def start_enrolment(conn: asyncpg.Connection, cmd: EnrolmentCode) -> dict:
    """Who is enrolling, and the authenticator secret offered to them (the same one until
    they complete)."""
    row = await _enrolling(conn, cmd.code)
    secret = await conn.fetchval(Q.offer_totp, row["id"], pyotp.random_base32())
    return {"name": row["name"], "email": row["email"], "role": row["role"],
            "language": row["language"], "totp_secret": secret,
            "totp_uri": pyotp.TOTP(secret).provisioning_uri(name=row["email"],
                                                            issuer_name=TOTP_ISSUER),
            "totp_required": row["role"] == "admin"}


async def complete_enrolment(conn: asyncpg.Connection, cmd: CompleteEnrolment) -> dict:
    """Set the password and, with a code from the app, the second factor (required for
    admins); the code is used up."""
    row = await _enrolling(conn, cmd.code)
    if cmd.password.strip().lower() == row["email"].lower():
        raise Invalid("the password must not be the email", field="password")
    secret, step = None, None
    if cmd.totp_code is not None:
        if row["pending_totp_secret"] is None:
            raise Invalid("start the enrolment first", field="code")
        step = totp_step(row["pending_totp_secret"], cmd.totp_code)
        if step is None:
            raise Invalid("the code from the authenticator app is wrong", field="totp_code")
        secret = row["pending_totp_secret"]
    elif row["role"] == "admin":
        raise Invalid("admins need a code from an authenticator app", field="totp_code")
    password_hash = await asyncio.to_thread(_hasher.hash, cmd.password)
    await conn.execute(Q.complete_enrolment, row["id"], password_hash, secret, step)
    log.info("staff account %s enrolled (second factor: %s)", row["id"], secret is not None)
    return {"id": row["id"], "email": row["email"], "totp": secret is not None}


def totp_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The 30 s step whose code `code` is (this one or a neighbour, for clock drift)."""
    now = time.time() if now is None else now
    totp = pyotp.TOTP(secret)
    current = int(now // TOTP_STEP)
    for step in (current, current - 1, current + 1):
        if hmac.compare_digest(totp.at(step * TOTP_STEP), code.strip()):
            return step
    return None


# --- sign-in and sessions --------------------------------------------------------------


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(16))


async def _password_ok(stored: str | None, password: str) -> bool:
    """argon2id verification in a thread (about 50 ms); an account without a password is
    checked against a dummy hash, so the time says nothing about which accounts exist."""
    try:
        return await asyncio.to_thread(_hasher.verify, stored or _dummy_hash(), password) \
            and stored is not None
    except (VerificationError, InvalidHashError):
        return False


async def sign_in(pool: asyncpg.Pool, cmd: SignIn, address: str, settings) -> dict:
    """Check password and TOTP code under the rate limits; a new session and its token."""
    account, where = f"account:{cmd.email.lower()}", f"address:{address}"
    window = settings.sign_in_window_seconds
    async with pool.acquire() as conn:
        counts = await conn.fetchrow(Q.failures, account, where, window)
        if counts["account"] >= settings.sign_in_max_account_failures or \
                counts["address"] >= settings.sign_in_max_address_failures:
            log.warning("sign-in refused: too many failures (%s)",
                        "account" if counts["account"] >= settings.sign_in_max_account_failures
                        else "address")
            raise TooManyAttempts("too many failed sign-ins: try again later",
                                  retry_after_seconds=int(window))
        row = await conn.fetchrow(Q.staff_for_sign_in, cmd.email)
        ok = await _password_ok(row["password_hash"] if row else None, cmd.password)
        if ok and row["disabled_at"] is not None:
            ok = False
        if ok and row["totp_secret"] is not None:
            step = totp_step(row["totp_secret"], cmd.totp_code or "") if cmd.totp_code else None
            ok = step is not None and await conn.fetchval(Q.use_totp_step, row["id"], step) is not None
        if ok and row["role"] == "admin" and row["totp_secret"] is None:
            ok = False  # an admin without a second factor cannot sign in
        if not ok:
            await conn.execute(Q.record_failure, [account, where])
            log.info("sign-in failed")
            raise Unauthorized("the email, password or code is not right")
        async with conn.transaction():
            await conn.execute(Q.forget_failures, account)
            session_id = uuid4()
            expires = datetime.now(UTC) + timedelta(hours=settings.session_max_hours)
            await conn.execute(Q.insert_session, session_id, row["id"], row["clinic_id"], expires)
            key = await signing_key(conn, row["clinic_id"])
    log.info("staff %s signed in (session %s)", row["id"], session_id)
    return _token(key, row["id"], row["clinic_id"], session_id, row["role"], row["name"],
                  row["language"], expires, settings)


def _token(key, staff_id, clinic_id, session_id, role, name, language, session_expires,
           settings) -> dict:
    ttl = min(settings.token_ttl_seconds,
              max(1.0, (session_expires - datetime.now(UTC)).total_seconds()))
    token, expires = tokens.sign(key, staff_id=staff_id, clinic_id=clinic_id,
                                 session_id=session_id, role=role, name=name, ttl_seconds=ttl)
    return {"token": token, "token_type": "Bearer",
            "expires_at": datetime.fromtimestamp(expires, UTC), "session_id": session_id,
            "session_expires_at": session_expires,
            "staff": {"id": staff_id, "clinic_id": clinic_id, "name": name, "role": role,
                      "language": language}}


async def refresh(conn: asyncpg.Connection, who: Principal, session_id: UUID, settings) -> dict:
    """A fresh token for a session that is still open (its person's current role)."""
    row = await conn.fetchrow(Q.open_session, session_id)
    if row is None or row["staff_id"] != who.staff_id:
        raise Unauthorized("the session ended")
    key = await signing_key(conn, row["clinic_id"])
    return _token(key, row["staff_id"], row["clinic_id"], row["id"], row["role"], row["name"],
                  row["language"], row["expires_at"], settings)
