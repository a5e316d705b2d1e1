"""The event contract shared by every service.

Every event travels in an `Envelope` (JSON on the wire, keyed by `patient_id` so that one
patient's events stay in order). The envelope's `payload` is a frozen, past-tense
`Event` model; `event_type` and `schema_version` say which model and version it is.
Consumers ignore fields they do not know, and older versions are upcast on parsing.
"""

from shared.events import booking, notifier, plans, staff
from shared.events.base import (
    Envelope,
    Event,
    UnknownEvent,
    event_types,
    parse_envelope,
    register_upcaster,
)

__all__ = [
    "Envelope",
    "Event",
    "UnknownEvent",
    "booking",
    "event_types",
    "notifier",
    "parse_envelope",
    "plans",
    "register_upcaster",
    "staff",
]
