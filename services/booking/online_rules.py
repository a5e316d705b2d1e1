"""Rules of online consultation booking (services/booking/online.py), without I/O: the
network's public slug, the verification code (6 digits, 10 minutes, 5 tries, kept as an
HMAC), the limits on asking for codes, and how a visitor's name matches a patient's."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from uuid import UUID

from services.booking.model import OnlineRequest, Recent
from shared.errors import Invalid

CODE_DIGITS = 6
CODE_VALID = timedelta(minutes=10)
CODE_TRIES = 5
SLUG = r"^[a-z0-9]+(-[a-z0-9]+)*$"
SLUG_MAX = 40


def slug_of(name: str) -> str:
    """A network's public slug from its name: lowercase ASCII words joined by hyphens
    ("Cédar Grove Clinics" -> "cedar-grove-clinics"), at most 40 characters."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9]+", "-", folded).strip("-")[:SLUG_MAX].strip("-")
    return slug or "clinic"


def new_code() -> str:
    """A random 6-digit code (leading zeros kept)."""
    return f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"


def code_hash(request_id: UUID, code: str, pepper: str = "") -> str:
    """What is stored of a code: HMAC-SHA256 keyed with the pepper and the request's id."""
    key = (pepper + str(request_id)).encode()
    return hmac.new(key, code.encode(), hashlib.sha256).hexdigest()


def check_code(attempt: OnlineRequest, code: str, now: datetime, pepper: str = "") -> str:
    """`ok`, or why not: `used` (already booked), `expired`, `locked` (5 wrong tries) or
    `wrong` (this try counts)."""
    if attempt.booked:
        return "used"
    if now >= attempt.expires_at:
        return "expired"
    if attempt.tries >= CODE_TRIES:
        return "locked"
    digits = code.strip()
    if not hmac.compare_digest(code_hash(attempt.id, digits, pepper), attempt.code_hash):
        return "wrong"
    return "ok"


REFUSALS = {
    "used": (409, "this request was already used to book"),
    "expired": (422, "the code expired: ask for a new one"),
    "locked": (429, "too many wrong codes: ask for a new one"),
    "wrong": (422, "the code is not right"),
}


@dataclass(frozen=True, slots=True)
class Limits:
    """Codes asked for within the last hour: at most `per_number` for one number,
    `per_address` from one address, `per_network` for one network."""

    per_number: int = 3
    per_address: int = 10
    per_network: int = 200


def over_limit(recent: Recent, limits: Limits) -> str | None:
    """Which limit a new code request would pass (`number`, `address`, `network`), or None."""
    if recent.number >= limits.per_number:
        return "number"
    if recent.address >= limits.per_address:
        return "address"
    if recent.network >= limits.per_network:
        return "network"
    return None


def name_key(name: str) -> str:
    """A name as matching compares it: case, accents and spacing folded."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return " ".join(folded.lower().split())


def check_start(starts_at: datetime, free: list[datetime]) -> None:
    """A chosen time must be one of the free consultation slots (422 on `starts_at`)."""
    if starts_at not in free:
        raise Invalid("that time is not free: choose another", field="starts_at")


def merged_hours(spans: list[tuple[time, time]]) -> list[tuple[time, time]]:
    """Working hours of several providers on one day as disjoint spans (overlapping or
    touching spans joined), so that each start time is considered once."""
    out: list[tuple[time, time]] = []
    for starts, ends in sorted(spans):
        if out and starts <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], ends))
        else:
            out.append((starts, ends))
    return out
