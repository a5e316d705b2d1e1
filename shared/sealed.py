"""Short secrets sealed for their trip through the event log: the verification code of the
public booking page goes from booking to the notifier in `OnlineCodeRequested` encrypted
(Fernet, from `cryptography`: AES-128-CBC with an HMAC-SHA256, and the time it was sealed),
with a key both services read from their settings (`ONLINE_CODE_KEY`). The broker, the
outbox rows and the dead letters only ever hold the sealed form."""

from __future__ import annotations

from datetime import timedelta

from cryptography.fernet import Fernet, InvalidToken


class SealError(Exception):
    """A sealed value that cannot be opened: another key, altered, or older than allowed."""


def new_key() -> str:
    """A fresh key (url-safe base64 of 32 random bytes), e.g. for a development stack."""
    return Fernet.generate_key().decode()


def seal(key: str, secret: str) -> str:
    """`secret` encrypted and signed with `key` (ValueError: not a key)."""
    return Fernet(key.encode()).encrypt(secret.encode()).decode()


def unseal(key: str, token: str, max_age: timedelta | None = None) -> str:
    """The secret sealed in `token`; SealError if it was not sealed with `key`, was altered,
    or (with `max_age`) was sealed longer ago than that."""
    ttl = None if max_age is None else int(max_age.total_seconds())
    try:
        return Fernet(key.encode()).decrypt(token.encode(), ttl=ttl).decode()
    except (InvalidToken, ValueError) as exc:
        raise SealError("the sealed value cannot be opened with this key") from exc
