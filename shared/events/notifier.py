"""Events published by the notifier on `notifier.events`."""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from shared.events.base import Event
from shared.topics import NOTIFIER_EVENTS


class _NotifierEvent(Event):
    topic: ClassVar[str] = NOTIFIER_EVENTS


class SmsSent(_NotifierEvent):
    """A text was handed to the SMS provider (or the local recording sender)."""

    text_id: int
    kind: str
    booking_id: UUID | None = None
    provider_sid: str
    segments: int
