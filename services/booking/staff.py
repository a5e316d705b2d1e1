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
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID, uuid4

import asyncpg
import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import ConfigDict, Field, field_validator

from services.booking import store
from services.booking.model import Credentials, StaffMember, as_dict
from services.booking.settings import BookingSettings
from shared import tokens
from shared.auth import Principal
from shared.db import Connection
from shared.errors import Conflict, DomainError, Invalid, NotFound
from shared.events.staff import StaffSessionEnded, StaffTokenKeyIssued
from shared.validation import RequestModel

log = logging.getLogger(__name__)
Role = Literal["admin", "scheduler", "clinician", "ops", "read-only", "privacy"]
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
    """A body of these endpoints: checked at the door like every other (no control
    characters in its strings)."""

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
    def _not_blank(cls, value: Any) -> Any:
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


async def signing_key(conn: Connection, clinic_id: UUID) -> tuple[str, bytes]:
    """The network's token key (made on first use, its public half announced in the same
    transaction as `StaffTokenKeyIssued`)."""
    key = await store.signing_key(conn, clinic_id)
    if key is None:
        pair = tokens.new_key_pair()
        if await store.insert_signing_key(conn, pair.kid, clinic_id, pair.private_pem,
                                          pair.public_pem):
            await store.emit(conn, [store.event(
                StaffTokenKeyIssued(kid=pair.kid, public_key=pair.public_pem), clinic_id, None)])
        key = await store.signing_key(conn, clinic_id)
        assert key is not None  # ours, or the one made meanwhile
    return key.kid, bytes(key.private_key)


# --- accounts (admins) -----------------------------------------------------------------


async def add_staff(conn: Connection, who: Principal, cmd: AddStaff,
                    enrolment_hours: float) -> dict[str, Any]:
    """A new person; the answer carries their one-time enrolment code (shown once)."""
    await signing_key(conn, who.clinic_id)
    code, digest, expires = _new_enrolment(enrolment_hours)
    row = await store.insert_staff(conn, uuid4(), who.clinic_id, cmd.email, cmd.name, cmd.role,
                                   cmd.language, digest, expires, who.actor)
    if row is None:
        raise Conflict("this email already signs someone in", field="email")
    log.info("staff account %s added (%s)", row.id, cmd.role)
    return {**as_dict(row), "enrolment_code": code, "enrolment_expires_at": expires}


async def get_staff(conn: Connection, clinic_id: UUID, staff_id: UUID) -> StaffMember:
    """The network's person, or 404."""
    member = await store.get_staff(conn, clinic_id, staff_id)
    if member is None:
        raise NotFound("unknown staff member", field="staff_id")
    return member


def _not_self(who: Principal, staff_id: UUID, what: str) -> None:
    if who.staff_id == staff_id:
        raise Conflict(f"you cannot {what} yourself: ask another admin")


async def change_role(conn: Connection, who: Principal, staff_id: UUID,
                      cmd: ChangeRole) -> StaffMember:
    """A new role; the person's sessions end (they sign in again with it)."""
    _not_self(who, staff_id, "change the role of")
    current = await get_staff(conn, who.clinic_id, staff_id)
    if cmd.role == "admin" and current.enrolled and not current.has_totp:
        raise Conflict("an admin needs an authenticator app: reset their enrolment first",
                       field="role")
    await store.set_role(conn, who.clinic_id, staff_id, cmd.role)
    await end_sessions(conn, staff_id)
    return await get_staff(conn, who.clinic_id, staff_id)


async def disable(conn: Connection, who: Principal, staff_id: UUID) -> StaffMember:
    """Disable a person (they cannot sign in); their sessions end."""
    _not_self(who, staff_id, "disable")
    if not await store.disable_staff(conn, who.clinic_id, staff_id):
        raise NotFound("unknown staff member", field="staff_id")
    await end_sessions(conn, staff_id)
    return await get_staff(conn, who.clinic_id, staff_id)


async def reset_enrolment(conn: Connection, who: Principal, staff_id: UUID,
                          enrolment_hours: float) -> dict[str, Any]:
    """Forget the person's password and authenticator; a new one-time enrolment code."""
    code, digest, expires = _new_enrolment(enrolment_hours)
    if not await store.reset_enrolment(conn, who.clinic_id, staff_id, digest, expires):
        raise NotFound("unknown staff member", field="staff_id")
    await end_sessions(conn, staff_id)
    return {**as_dict(await get_staff(conn, who.clinic_id, staff_id)), "enrolment_code": code,
            "enrolment_expires_at": expires}


async def end_sessions(conn: Connection, staff_id: UUID,
                       session_id: UUID | None = None) -> int:
    """End a person's open sessions (or one): refused here at once, elsewhere on the event."""
    ended = await store.end_sessions(conn, staff_id, session_id)
    for s in ended:
        await tokens.end_session(conn, s.id, s.clinic_id, s.expires_at)
    await store.emit(conn, [store.event(
        StaffSessionEnded(session_id=s.id, staff_id=s.staff_id, expires_at=s.expires_at),
        s.clinic_id, None) for s in ended])
    return len(ended)


# --- enrolment (the person) ------------------------------------------------------------


async def _enrolling(conn: Connection, code: str) -> Credentials:
    person = await store.staff_by_enrolment(conn, _digest(code))
    if person is None:
        raise NotFound("unknown or expired enrolment code", field="code")
    return person


async def start_enrolment(conn: Connection, cmd: EnrolmentCode) -> dict[str, Any]:
    """Who is enrolling, and the authenticator secret offered to them (the same one until
    they complete)."""
    person = await _enrolling(conn, cmd.code)
    secret = await store.offer_totp(conn, person.id, pyotp.random_base32())
    return {"name": person.name, "email": person.email, "role": person.role,
            "language": person.language, "totp_secret": secret,
            "totp_uri": pyotp.TOTP(secret).provisioning_uri(name=person.email,
                                                            issuer_name=TOTP_ISSUER),
            "totp_required": person.role == "admin"}


def _second_factor(person: Credentials, totp_code: str | None) -> tuple[str | None, int | None]:
    """The authenticator secret confirmed by `totp_code` and the code's step (none without
    a code, which only a person who is not an admin may leave out)."""
    if totp_code is None:
        if person.role == "admin":
            raise Invalid("admins need a code from an authenticator app", field="totp_code")
        return None, None
    if person.pending_totp_secret is None:
        raise Invalid("start the enrolment first", field="code")
    step = totp_step(person.pending_totp_secret, totp_code)
    if step is None:
        raise Invalid("the code from the authenticator app is wrong", field="totp_code")
    return person.pending_totp_secret, step


async def complete_enrolment(conn: Connection, cmd: CompleteEnrolment) -> dict[str, Any]:
    """Set the password and, with a code from the app, the second factor (required for
    admins); the code is used up."""
    person = await _enrolling(conn, cmd.code)
    if cmd.password.strip().lower() == person.email.lower():
        raise Invalid("the password must not be the email", field="password")
    secret, step = _second_factor(person, cmd.totp_code)
    password_hash = await asyncio.to_thread(_hasher.hash, cmd.password)
    await store.complete_enrolment(conn, person.id, password_hash, secret, step)
    log.info("staff account %s enrolled (second factor: %s)", person.id, secret is not None)
    return {"id": person.id, "email": person.email, "totp": secret is not None}


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


async def _refuse_when_over_limits(conn: Connection, account: str, address: str,
                                   settings: BookingSettings) -> None:
    """Refuse (429) while the account or the address failed too often within the window."""
    counts = await store.failures(conn, account, address, settings.sign_in_window_seconds)
    over_account = counts.account >= settings.sign_in_max_account_failures
    if over_account or counts.address >= settings.sign_in_max_address_failures:
        log.warning("sign-in refused: too many failures (%s)",
                    "account" if over_account else "address")
        raise TooManyAttempts("too many failed sign-ins: try again later",
                              retry_after_seconds=int(settings.sign_in_window_seconds))


async def _signs_in(conn: Connection, person: Credentials | None, cmd: SignIn) -> bool:
    """Whether the password and the code (for a person with a second factor; admins must
    have one) are right for an account that is not disabled. A code works once."""
    ok = await _password_ok(person.password_hash if person else None, cmd.password)
    if not ok or person is None or person.disabled_at is not None:
        return False
    if person.totp_secret is None:
        return person.role != "admin"  # an admin without a second factor cannot sign in
    step = totp_step(person.totp_secret, cmd.totp_code) if cmd.totp_code else None
    return step is not None and await store.use_totp_step(conn, person.id, step)


SignInAudit = Callable[[Connection, Credentials | None, bool], Awaitable[None]]


async def sign_in(pool: asyncpg.Pool, cmd: SignIn, address: str, settings: BookingSettings,
                  audit: SignInAudit | None = None) -> dict[str, Any]:
    """Check password and TOTP code under the rate limits; a new session and its token.
    `audit(conn, person, signed_in)` records the attempt with the failure, or in the session's
    transaction."""
    account, where = f"account:{cmd.email.lower()}", f"address:{address}"
    async with pool.acquire() as conn:
        await _refuse_when_over_limits(conn, account, where, settings)
        person = await store.staff_for_sign_in(conn, cmd.email)
        if not await _signs_in(conn, person, cmd):
            async with conn.transaction():
                await store.record_failure(conn, [account, where])
                if audit is not None:
                    await audit(conn, person, False)
            log.info("sign-in failed")
            raise Unauthorized("the email, password or code is not right")
        assert person is not None  # _signs_in says no without one
        async with conn.transaction():
            await store.forget_failures(conn, account)
            session_id = uuid4()
            expires = datetime.now(UTC) + timedelta(hours=settings.session_max_hours)
            await store.insert_session(conn, session_id, person.id, person.clinic_id, expires)
            key = await signing_key(conn, person.clinic_id)
            if audit is not None:
                await audit(conn, person, True)
    log.info("staff %s signed in (session %s)", person.id, session_id)
    return _token(key, person.id, person.clinic_id, session_id, person.role, person.name,
                  person.language, expires, settings)


def _token(key: tuple[str, bytes], staff_id: UUID, clinic_id: UUID, session_id: UUID, role: str,
           name: str, language: str, session_expires: datetime,
           settings: BookingSettings) -> dict[str, Any]:
    ttl = min(settings.token_ttl_seconds,
              max(1.0, (session_expires - datetime.now(UTC)).total_seconds()))
    token, expires = tokens.sign(key, staff_id=staff_id, clinic_id=clinic_id,
                                 session_id=session_id, role=role, name=name, ttl_seconds=ttl)
    return {"token": token, "token_type": "Bearer",
            "expires_at": datetime.fromtimestamp(expires, UTC), "session_id": session_id,
            "session_expires_at": session_expires,
            "staff": {"id": staff_id, "clinic_id": clinic_id, "name": name, "role": role,
                      "language": language}}


async def refresh(conn: Connection, who: Principal, session_id: UUID,
                  settings: BookingSettings) -> dict[str, Any]:
    """A fresh token for a session that is still open (its person's current role)."""
    session = await store.open_session(conn, session_id)
    if session is None or session.staff_id != who.staff_id:
        raise Unauthorized("the session ended")
    key = await signing_key(conn, session.clinic_id)
    return _token(key, session.staff_id, session.clinic_id, session.id, session.role,
                  session.name, session.language, session.expires_at, settings)
