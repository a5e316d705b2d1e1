"""Events about staff sign-in, published by booking on `booking.events` (network-level: keyed
by clinic). They carry no secret: only public keys and session ids."""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from pydantic import AwareDatetime

from shared.events.base import Event
from shared.topics import BOOKING_EVENTS


class _StaffEvent(Event):
    topic: ClassVar[str] = BOOKING_EVENTS


class StaffTokenKeyIssued(_StaffEvent):
    """A clinic network's public key for staff tokens (Ed25519, PEM): tokens whose header
    names `kid` are verified with it, and are valid for this network only."""

    kid: str
    public_key: str


class StaffSessionEnded(_StaffEvent):
    """A staff member's signed-in session ended (signed out, account disabled, role changed,
    enrolment reset): its tokens are refused from now on."""

    session_id: UUID
    staff_id: UUID
    expires_at: AwareDatetime
    """When the session would have ended anyway (its tokens expire by then)."""
