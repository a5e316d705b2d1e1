"""FHIR R4 views of bookings: `Appointment` resources and searchset bundles."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

import asyncpg

from shared.errors import Invalid
from shared.validation import EARLIEST, LATEST

SESSION_TYPE_SYSTEM = "urn:ketamine-clinic-backbone:session-type"
_PREFIXED = re.compile(r"^(eq|ne|gt|lt|ge|le|sa|eb)?(.+)$")


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def appointment(row: asyncpg.Record) -> dict:
    """A booking as a FHIR R4 Appointment."""
    minutes = int((row["occupied_until"] - row["starts_at"]).total_seconds() // 60)
    resource = {
        "resourceType": "Appointment",
        "id": str(row["id"]),
        "meta": {"versionId": str(row["version"]), "lastUpdated": _instant(row["updated_at"])},
        "status": row["status"],
        "serviceType": [{"coding": [{"system": SESSION_TYPE_SYSTEM, "code": row["session_type"]}],
                         "text": row["session_type"].replace("_", " ")}],
        "start": _instant(row["starts_at"]),
        "end": _instant(row["occupied_until"]),
        "minutesDuration": minutes,
        "created": _instant(row["created_at"]),
        "participant": [
            {"actor": {"reference": f"Patient/{row['patient_id']}"}, "required": "required",
             "status": "accepted" if row["confirmed_at"] else "needs-action"},
            {"actor": {"reference": f"Practitioner/{row['provider_id']}"}, "required": "required",
             "status": "accepted"},
            {"actor": {"reference": f"Location/{row['room_id']}"}, "required": "required",
             "status": "accepted"},
        ],
    }
    if row["status"] == "cancelled" and row["cancel_reason"]:
        resource["cancelationReason"] = {"text": row["cancel_reason"]}
    return resource


def bundle(rows: list[asyncpg.Record], base_url: str) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(rows),
        "entry": [{"fullUrl": f"{base_url}/fhir/Appointment/{r['id']}",
                   "resource": appointment(r), "search": {"mode": "match"}} for r in rows],
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
            lower, upper = _max(lower, start), _min(upper, end if end > start else start + timedelta(seconds=1))
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


def _max(a, b):
    return b if a is None or b > a else a


def _min(a, b):
    return b if a is None or b < a else a
