"""FHIR R4 views of bookings: `Appointment` resources and searchset bundles."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from services.booking.model import Booking
from shared.errors import Invalid
from shared.validation import EARLIEST, LATEST

SESSION_TYPE_SYSTEM = "urn:ketamine-clinic-backbone:session-type"
_PREFIXED = re.compile(r"^(eq|ne|gt|lt|ge|le|sa|eb)?(.+)$")


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def appointment(b: Booking) -> dict[str, Any]:
    """A booking as a FHIR R4 Appointment."""
    minutes = int((b.occupied_until - b.starts_at).total_seconds() // 60)
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": str(b.id),
        "meta": {"versionId": str(b.version), "lastUpdated": _instant(b.updated_at)},
        "status": b.status,
        "serviceType": [{"coding": [{"system": SESSION_TYPE_SYSTEM, "code": b.session_type}],
                         "text": b.session_type.replace("_", " ")}],
        "start": _instant(b.starts_at),
        "end": _instant(b.occupied_until),
        "minutesDuration": minutes,
        "created": _instant(b.created_at),
        "participant": [
            {"actor": {"reference": f"Patient/{b.patient_id}"}, "required": "required",
             "status": "accepted" if b.confirmed_at else "needs-action"},
            {"actor": {"reference": f"Practitioner/{b.provider_id}"}, "required": "required",
             "status": "accepted"},
        ],
    }
    if b.room_id is not None:  # phone, video and home visits take no room
        resource["participant"].append({"actor": {"reference": f"Location/{b.room_id}"},
                                        "required": "required", "status": "accepted"})
    if b.status == "cancelled" and b.cancel_reason:
        resource["cancelationReason"] = {"text": b.cancel_reason}
    return resource


def bundle(bookings: list[Booking], base_url: str) -> dict[str, Any]:
    """Bookings as a FHIR searchset Bundle."""
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(bookings),
        "entry": [{"fullUrl": f"{base_url}/fhir/Appointment/{b.id}",
                   "resource": appointment(b), "search": {"mode": "match"}} for b in bookings],
    }


def date_bounds(params: list[str]) -> tuple[datetime | None, datetime | None]:
    """The [from, to) range meant by FHIR `date` search parameters (eq, ge, gt, le, lt)."""
    lower: datetime | None = None
    upper: datetime | None = None
    for raw in params:
        match = _PREFIXED.match(raw)
        if match is None:
            raise Invalid("empty date parameter", field="date")
        prefix, value = match.groups()
        prefix = prefix or "eq"
        try:
            whole_day = len(value) == 10
            start = datetime.combine(date.fromisoformat(value), time(0), UTC) if whole_day else \
                datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise Invalid("unreadable date parameter", field="date") from None
        if not EARLIEST <= start.date() <= LATEST:
            raise Invalid(f"dates must be between {EARLIEST} and {LATEST}", field="date")
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        end = start + timedelta(days=1) if whole_day else start
        if prefix == "eq":
            lower, upper = (
                _max(lower, start),
                _min(upper, end if end > start else start + timedelta(seconds=1)),
            )
        elif prefix in ("ge", "sa"):
            lower = _max(lower, start if prefix == "ge" else end)
        elif prefix == "gt":
            lower = _max(lower, end if end > start else start + timedelta(microseconds=1))
        elif prefix in ("lt", "eb"):
            upper = _min(upper, start)
        elif prefix == "le":
            upper = _min(upper, end if end > start else start + timedelta(microseconds=1))
        else:
            raise Invalid("the ne prefix is not supported", field="date")
    return lower, upper


def _max(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


def _min(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b < a else a
