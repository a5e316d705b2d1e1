"""A text a dispatcher claimed, as it goes through sending: what the dispatcher and the
record of its outcome (`outcomes`) hold of it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.notifier.policy import Policy
from services.notifier.store import PRODUCER, THIRD_PARTY, DueText
from shared.events import Envelope, Event


@dataclass(slots=True)
class Claimed:
    """A claimed text: its row and context (`due`), its clinic's policy, and what became of
    it so far."""

    due: DueText
    policy: Policy
    claim: datetime | None = None
    """The token of the dispatcher's claim (the time it was claimed)."""
    checked: float = 0.0
    """When (event loop time) the claim checked that the text stands."""
    body: str = ""
    segments: int = 1
    template_version: int = 0
    """The version of its network's own words it was rendered with (0: the built-in ones)."""
    to_driver: bool = False
    """Whether the text goes to someone else than the patient: the ride contact (the pickup
    text) or a home session's support person (the support text)."""
    done: bool = False
    """Settled, or handed to the sender (it may have reached the provider)."""

    def __post_init__(self) -> None:
        self.to_driver = self.due.kind in THIRD_PARTY

    @property
    def to(self) -> str:
        """The number the text goes to (a text without one is never claimed: `why_not`)."""
        number = self.due.ride_contact_phone if self.to_driver else self.due.phone_e164
        if number is None:
            raise ValueError(f"text {self.due.id} has no number to go to")
        return number

    def envelope(self, payload: Event) -> Envelope[Event]:
        """`payload` as the notifier's event about this text's patient."""
        return Envelope.new(payload, producer=PRODUCER, clinic_id=self.due.clinic_id,
                            patient_id=self.due.patient_id)
