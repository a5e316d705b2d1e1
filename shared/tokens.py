"""Staff tokens: what a person gets when they sign in (booking's `POST /auth/sign-in`), and
what every service accepts next to API keys (`Authorization: Bearer <token>`).

A token is a short-lived JWT signed with its clinic network's Ed25519 key (EdDSA). Only
booking holds the private keys, so only booking can mint tokens; the public keys reach
plans and notifier as `StaffTokenKeyIssued` events (kept in their `token_keys` table). A
token names its key (`kid`) and its network (`cid`), and a key verifies tokens of its own
network only, so a token is good for that network and no other. It names its session
(`sid`): a session that ended (sign-out, the person's account disabled or their role
changed) is in `ended_sessions` (booking writes it at once, the others on
`StaffSessionEnded`), and its tokens are refused, even before they expire.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from uuid import UUID

import asyncpg
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.db import Connection, Queries
from shared.events import Envelope
from shared.events.staff import StaffSessionEnded, StaffTokenKeyIssued

ISSUER = "kcb-booking"
AUDIENCE = "kcb"
ALGORITHM = "EdDSA"
_REQUIRED = ["exp", "iat", "sub", "iss", "aud"]
_LEEWAY_SECONDS = 5
_MAX_TOKEN_LENGTH = 4096

Q = Queries(Path(__file__).with_name("tokens.sql"))


class BadToken(Exception):
    """The token is not one this system issued, is expired, or its session ended."""


@dataclass(frozen=True)
class KeyPair:
    kid: str
    private_pem: bytes
    public_pem: str


@dataclass(frozen=True)
class TokenClaims:
    staff_id: UUID
    clinic_id: UUID
    session_id: UUID
    role: str
    name: str
    expires_at: float


def new_key_pair() -> KeyPair:
    """A new Ed25519 key pair for a clinic network's tokens, with a random key id."""
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return KeyPair("k" + secrets.token_hex(12), private_pem, public_pem)


def sign(key: KeyPair | tuple[str, bytes], *, staff_id: UUID, clinic_id: UUID,
         session_id: UUID, role: str, name: str, ttl_seconds: float,
         now: float | None = None) -> tuple[str, float]:
    """A token for a person's session, and when it expires (epoch seconds)."""
    kid, private_pem = (key.kid, key.private_pem) if isinstance(key, KeyPair) else key
    now = time.time() if now is None else now
    expires = now + ttl_seconds
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": str(staff_id), "cid": str(clinic_id),
              "sid": str(session_id), "role": role, "name": name, "iat": int(now),
              "exp": int(expires)}
    private = serialization.load_pem_private_key(private_pem, password=None)
    if not isinstance(private, Ed25519PrivateKey):
        raise TypeError("a network's signing key is Ed25519")
    token = jwt.encode(claims, private, algorithm=ALGORITHM, headers={"kid": kid})
    return token, float(int(expires))


_public_keys: dict[str, Ed25519PublicKey] = {}


def _public_key(kid: str, pem: str) -> Ed25519PublicKey:
    """The key object for a `kid` (parsed once per process: a kid's key never changes)."""
    key = _public_keys.get(kid)
    if key is None:
        loaded = serialization.load_pem_public_key(pem.encode())
        if not isinstance(loaded, Ed25519PublicKey):
            raise BadToken("not an Ed25519 key")
        if len(_public_keys) > 10_000:
            _public_keys.clear()
        _public_keys[kid] = key = loaded
    return key


async def verify(db: Connection | asyncpg.Pool, token: str) -> TokenClaims:
    """The claims of a valid token (its signature, expiry, network and session checked
    against this service's copy of the keys and ended sessions, one query), else `BadToken`."""
    if len(token) > _MAX_TOKEN_LENGTH:
        raise BadToken("token too long")
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        raise BadToken("malformed token") from None
    if not isinstance(kid, str) or not 1 <= len(kid) <= 64:
        raise BadToken("malformed token")
    unverified = _unverified_session(token)
    row = await db.fetchrow(Q.token_key, kid, unverified)
    if row is None:
        raise BadToken("unknown signing key")
    try:
        claims = jwt.decode(token, _public_key(kid, row["public_key"]), algorithms=[ALGORITHM],
                            audience=AUDIENCE, issuer=ISSUER, leeway=_LEEWAY_SECONDS,
                            options={"require": _REQUIRED})
        parsed = TokenClaims(UUID(claims["sub"]), UUID(claims["cid"]), UUID(claims["sid"]),
                             str(claims["role"]), str(claims["name"])[:200], float(claims["exp"]))
    except (jwt.PyJWTError, KeyError, ValueError, TypeError):
        raise BadToken("invalid or expired token") from None
    if parsed.clinic_id != row["clinic_id"] or parsed.session_id != unverified:
        raise BadToken("token of another network")
    if row["ended"]:
        raise BadToken("the session ended")
    return parsed


def _unverified_session(token: str) -> UUID:
    """The session id a token claims (checked against the verified claims afterwards)."""
    try:
        return UUID(jwt.decode(token, options={"verify_signature": False})["sid"])
    except (jwt.PyJWTError, KeyError, ValueError, TypeError):
        raise BadToken("malformed token") from None


async def on_token_key_issued(conn: Connection,
                              env: Envelope[StaffTokenKeyIssued]) -> None:
    """Keep a network's public key for staff tokens (consumer handler)."""
    await conn.execute(Q.keep_token_key, env.payload.kid, env.clinic_id, env.payload.public_key)


async def on_session_ended(conn: Connection, env: Envelope[StaffSessionEnded]) -> None:
    """Refuse an ended session's tokens from now on (consumer handler); sessions past their
    expiry are forgotten (their tokens are expired anyway)."""
    await end_session(conn, env.payload.session_id, env.clinic_id, env.payload.expires_at)


async def end_session(conn: Connection, session_id: UUID, clinic_id: UUID,
                      expires_at: datetime) -> None:
    """Refuse a session's tokens from now on (booking, at sign-out; the others, on the event)."""
    await conn.execute(Q.end_session, session_id, clinic_id, expires_at)
    await conn.execute(Q.forget_expired_sessions)
