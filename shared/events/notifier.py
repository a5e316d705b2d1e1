"""Events published by the notifier on `notifier.events` (keyed by patient)."""

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


class PatientConfirmed(_NotifierEvent):
    """The patient replied that they will come (reply 1)."""

    booking_id: UUID


class RescheduleRequested(_NotifierEvent):
    """The patient replied that they need another time (reply 2)."""

    booking_id: UUID


class RideConfirmed(_NotifierEvent):
    """The patient replied that their ride home is arranged (reply 3, a name may follow)."""

    booking_id: UUID
    driver_name: str | None = None


class PatientOptedOut(_NotifierEvent):
    """The patient's number texted STOP (or another opt-out word, or asked in plain words):
    no more texts to that number. Published for every patient with that number, in every
    clinic network."""


class PatientOptedIn(_NotifierEvent):
    """The patient's number texted START again (published for every patient with it)."""


class RideContactOptedOut(_NotifierEvent):
    """The number of the patient's ride contact texted STOP: no more texts to it (pickup
    times go to staff). `phone_e164` is the number that opted out."""

    phone_e164: str


class RideContactOptedIn(_NotifierEvent):
    """The number of the patient's ride contact texted START again."""

    phone_e164: str


class WaitlistOfferAccepted(_NotifierEvent):
    """The patient accepted a waitlist slot offer by text."""

    offer_id: UUID


class SmsDelivered(_NotifierEvent):
    """The carrier confirmed delivery of a text."""

    text_id: int
    provider_sid: str


class SmsFailed(_NotifierEvent):
    """A text could not be delivered (Twilio's error code says why)."""

    text_id: int
    provider_sid: str | None = None
    error_code: str
    permanent: bool
