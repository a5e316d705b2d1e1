"""The notifier's store: its named queries (the `.sql` files beside this module, loaded once
into `Q`) and the functions that run those that return rows, which they give to the rest of
the service as frozen dataclasses (or, for the API's JSON, plain dicts), never as asyncpg
Records. A statement that returns no rows, or one value, is run with `Q` directly
(`conn.execute(Q.name, ...)`, `conn.fetchval(Q.name, ...)`).

This module imports nothing else of the notifier's: every other module may import it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
from pydantic import BaseModel

from shared.db import Queries
from shared.events import Envelope
from shared.events.booking import SessionBooked
from shared.events.notifier import SmsSent

PRODUCER = "notifier"
"""The `producer` of the notifier's events."""
SQL_FILES = ("queries.sql", "inbox.sql", "views.sql", "ops.sql", "retention.sql")
"""Texts (scheduled, dispatched, receipts, pauses) and policies; texts people send us and
the staff inbox; the staff screens' aggregate reads; the ops figures; the purges."""


class _Queries:
    """The named queries of several `.sql` files as one book (`shared.db.Queries` reads one
    file): `Q.name` is a query's SQL; a name is unique across the files."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self._sql: dict[str, str] = {}
        for path in paths:
            queries = Queries(path)
            for name in queries.names():
                if name in self._sql:
                    raise ValueError(f"{path}: a query named {name!r} is in another file too")
                self._sql[name] = getattr(queries, name)

    def __getattr__(self, name: str) -> str:
        try:
            return self._sql[name]
        except KeyError:
            raise AttributeError(f"no query named {name!r}") from None

    def names(self) -> list[str]:
        return sorted(self._sql)


Q = _Queries(Path(__file__).with_name(name) for name in SQL_FILES)
_Row = TypeVar("_Row")


async def _one(conn: asyncpg.Connection, row_type: type[_Row], query: str,
               *args: Any) -> _Row | None:
    """The row of `query` as a `row_type` (by column name), or None."""
    row = await conn.fetchrow(query, *args)
    return None if row is None else row_type(**row)


async def _all(conn: asyncpg.Connection, row_type: type[_Row], query: str,
               *args: Any) -> list[_Row]:
    """The rows of `query` as `row_type`s (by column name)."""
    return [row_type(**row) for row in await conn.fetch(query, *args)]


# -- events written in SQL: their JSON comes from the pydantic models --------------------

def json_object_sql(model: type[BaseModel], values: Mapping[str, str]) -> str:
    """SQL building `model` as JSON: `json_build_object` of each of its fields, in the
    model's order, with the SQL expression `values` gives for it. A field without a value,
    or a value for no field, raises: the model is the one source of the event's shape."""
    names = list(model.model_fields)
    if set(names) != set(values):
        raise ValueError(f"{model.__name__}: no SQL for {sorted(set(names) - set(values))}, "
                         f"SQL for no field {sorted(set(values) - set(names))}")
    return "json_build_object(" + ", ".join(f"'{name}', {values[name]}" for name in names) + ")"


SMS_SENT_JSON = json_object_sql(Envelope, {
    "event_id": "event_id", "event_type": "$5::text", "schema_version": "$6::integer",
    "occurred_at": "now()", "producer": "$7::text", "clinic_id": "clinic_id",
    "patient_id": "patient_id", "correlation_id": "event_id", "causation_id": "NULL",
    "payload": json_object_sql(SmsSent, {
        "text_id": "id", "kind": "kind", "booking_id": "booking_id", "provider_sid": "sid",
        "segments": "segments"})})
"""The `SmsSent` envelope `mark_sent` writes, from the columns of its `sent` rows."""
_SMS_SENT_SLOT = "json_build_object(/* the SmsSent envelope: SMS_SENT_JSON in store.py */)"
if _SMS_SENT_SLOT not in Q.mark_sent:
    raise ValueError(f"mark_sent must hold {_SMS_SENT_SLOT}")
MARK_SENT = Q.mark_sent.replace(_SMS_SENT_SLOT, SMS_SENT_JSON)
"""`mark_sent` with its `SmsSent` JSON; $4-$7 are `SMS_SENT`."""
SMS_SENT = (SmsSent.topic, SmsSent.event_type(), SmsSent.schema_version, PRODUCER)
"""What `MARK_SENT` takes after the texts: topic, event type, schema version, producer."""


# -- scheduling -------------------------------------------------------------------------

APPOINTMENT_FIELDS = ("clinic_name", "clinic_phone", "site_name", "site_address", "site_phone",
                      "site_timezone", "session_type", "is_dosing", "fasting_rule",
                      "patient_language", "starts_at", "ends_at", "site_id", "site_region",
                      "clinic_sms_name", "site_sms_name")
"""The `SessionBooked` fields `upsert_appointments` takes after booking, clinic, patient and
version (then the ride contact's name and phone)."""
TEXT_COLUMNS = ("clinic_id", "patient_id", "booking_id", "booking_version", "kind", "due_at",
                "valid_until", "status", "status_reason")
"""The columns of the texts `insert_texts` writes."""


async def upsert_appointments(conn: asyncpg.Connection,
                              booked: list[tuple[Envelope, SessionBooked]]) -> set[UUID]:
    """Store the appointments of these bookings (one each); returns the bookings stored: all
    but those we already hold a newer version of."""
    columns = [[b.booking_id for _, b in booked], [e.clinic_id for e, _ in booked],
               [e.patient_id for e, _ in booked], [b.version for _, b in booked]] + [
        [getattr(b, name) for _, b in booked] for name in APPOINTMENT_FIELDS] + [
        [b.ride_contact.name if b.ride_contact else None for _, b in booked],
        [b.ride_contact.phone_e164 if b.ride_contact else None for _, b in booked]]
    return set(await conn.fetchval(Q.upsert_appointments, *columns))


async def insert_texts(conn: asyncpg.Connection, rows: list[tuple]) -> None:
    """Write texts (`TEXT_COLUMNS`) by binary COPY: the cheapest way in for many rows."""
    if rows:
        await conn.copy_records_to_table("texts", records=rows, columns=TEXT_COLUMNS)


@dataclass(frozen=True, slots=True)
class PatientSite:
    """The site of a patient's latest appointment (texts about their course name it)."""

    site_id: UUID | None
    site_region: str | None
    site_timezone: str


async def latest_site(conn: asyncpg.Connection, patient_id: UUID) -> PatientSite | None:
    return await _one(conn, PatientSite, Q.latest_site, patient_id)


# -- policies ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PolicyRow:
    """A network's `clinic_policies` columns (None when it has none) and the quiet hours
    resolved for one site (None: the service's default), by (clinic, site, region)."""

    clinic_id: UUID
    site_id: UUID | None
    region: str | None
    daily_cap: int | None
    weekly_cap: int | None
    critical_past_caps: bool | None
    disabled_kinds: list[str] | None
    quiet_start: int | None
    quiet_end: int | None


async def policies_for_sites(conn: asyncpg.Connection,
                             keys: set[tuple[UUID, UUID | None, str | None]]) -> list[PolicyRow]:
    """The policy rows of these (clinic, site, region)."""
    if not keys:
        return []
    clinics, sites, regions = (list(c) for c in zip(*keys))
    return await _all(conn, PolicyRow, Q.policies_for_sites, clinics, sites, regions)


# -- dispatching ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DueText:
    """A text picked to go out, with everything the dispatcher decides by (the columns of
    the `text_context` fragment, in its order): the text, its contact, its appointment or
    slot offer (for a text about no booking, the patient's latest appointment), the clinic's
    policy with quiet hours resolved (None: the service's default), and how many texts the
    patient was sent today and in 7 days (counted only when a cap applies)."""

    id: int
    kind: str
    clinic_id: UUID
    patient_id: UUID
    booking_id: UUID | None
    booking_version: int | None
    valid_until: datetime
    due_at: datetime
    attempts: int
    offer_id: UUID | None
    offer_status: str | None
    phone_e164: str | None
    language: str | None
    sms_consent: bool | None
    stop_notice_sent: bool | None
    number_problem: str | None
    appointment_status: str | None
    appointment_version: int | None
    clinic_name: str | None
    text_phone: str | None
    site_name: str | None
    site_address: str | None
    site_timezone: str | None
    site_id: UUID | None
    site_region: str | None
    starts_at: datetime | None
    ends_at: datetime | None
    fasting_rule: str | None
    ride_status: str | None
    ride_contact_phone: str | None
    number_opted_out: bool
    daily_cap: int | None
    weekly_cap: int | None
    critical_past_caps: bool | None
    disabled_kinds: list[str] | None
    quiet_start: int | None
    quiet_end: int | None
    sent_today: int
    sent_week: int


DUE_TEXT_COLUMNS = tuple(f.name for f in fields(DueText))


def _due_texts(rows: list[asyncpg.Record]) -> list[DueText]:
    """`DueText`s built by position (the cheapest way), once the columns are checked."""
    if rows and tuple(rows[0].keys()) != DUE_TEXT_COLUMNS:
        raise ValueError("text_context's columns are not DueText's fields, in order")
    return [DueText(*row) for row in rows]


async def pick_due(conn: asyncpg.Connection, critical_kinds: list[str],
                   limit: int) -> list[DueText]:
    """Up to `limit` due texts, in due order, locked until the transaction ends (others pass
    them by); `critical_kinds`: those whose texts are not counted when they may pass caps."""
    return _due_texts(await conn.fetch(Q.pick_due, critical_kinds, limit))


async def texts_in_context(conn: asyncpg.Connection, critical_kinds: list[str],
                           ids: list[int]) -> list[DueText]:
    """The texts `ids` as `pick_due` gives them (not locked, whatever their status)."""
    return _due_texts(await conn.fetch(Q.texts_in_context, critical_kinds, ids))


async def hand_over(conn: asyncpg.Connection, ids: list[int],
                    claims: list[datetime]) -> set[int]:
    """Of these claimed texts, those still this dispatcher's that still stand, marked as
    handed over again (`hand_over`)."""
    return {r[0] for r in await conn.fetch(Q.hand_over, ids, claims)}


async def mark_sent(conn: asyncpg.Connection, ids: list[int], claims: list[datetime],
                    sids: list[str]) -> set[int]:
    """Record texts the provider took, with their `SmsSent` events (one statement); returns
    those recorded (not those recorded from their receipt first, nor lost claims)."""
    return {r[0] for r in await conn.fetch(MARK_SENT, ids, claims, sids, *SMS_SENT)}


async def sids_of_texts(conn: asyncpg.Connection, ids: list[int]) -> dict[int, str | None]:
    return {r[0]: r[1] for r in await conn.fetch(Q.sids_of_texts, ids)}


async def release_stale_claims(conn: asyncpg.Connection, stale_seconds: float,
                               grace_seconds: float) -> int:
    """Put back the claims of dispatchers that died or are stuck; returns how many."""
    return len(await conn.fetch(Q.release_stale_claims, stale_seconds, grace_seconds))


# -- delivery receipts and pauses -------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ReceiptText:
    """The text a receipt is about, with the number it went to (the ride contact's for a
    pickup text)."""

    id: int
    clinic_id: UUID
    patient_id: UUID
    booking_id: UUID | None
    delivery_status: str | None
    attempts: int
    phone: str | None


async def text_by_sid(conn: asyncpg.Connection, sid: str) -> ReceiptText | None:
    """The text with SID `sid`, locked until the transaction ends."""
    return await _one(conn, ReceiptText, Q.text_by_sid, sid)


@dataclass(frozen=True, slots=True)
class SentText:
    """A text recorded as sent from its delivery receipt (what its `SmsSent` says)."""

    id: int
    clinic_id: UUID
    patient_id: UUID
    booking_id: UUID | None
    kind: str
    segments: int | None


async def sent_per_receipt(conn: asyncpg.Connection, text_id: int, sid: str) -> SentText | None:
    """Record text `text_id` as sent as `sid` (`sent_per_receipt`), if it was handed over and
    has no SID; None if not."""
    return await _one(conn, SentText, Q.sent_per_receipt, text_id, sid)


@dataclass(frozen=True, slots=True)
class EarlyReceipt:
    provider_sid: str
    status: str
    error_code: str | None
    received_at: datetime


async def take_early_receipts(conn: asyncpg.Connection) -> list[EarlyReceipt]:
    """The kept receipts whose SID is now stored, removed as they are taken."""
    return await _all(conn, EarlyReceipt, Q.take_early_receipts)


@dataclass(frozen=True, slots=True)
class SenderPause:
    code: str
    meaning: str
    since: datetime


async def sender_pause(conn: asyncpg.Connection, key: str) -> SenderPause | None:
    return await _one(conn, SenderPause, Q.sender_pause, key)


# -- texts people send us ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Party:
    """Someone a number is to us: a patient's own number (`role` patient), or the number of
    a patient's ride contact (`role` ride_contact), in the patient's clinic network."""

    role: str
    clinic_id: UUID
    patient_id: UUID
    language: str = "en"


async def parties_of(conn: asyncpg.Connection, number: str) -> list[Party]:
    """Everyone `number` is to us (patients with it, patients whose ride contact has it)."""
    return await _all(conn, Party, Q.parties_of_number, number)


async def lift_opt_out(conn: asyncpg.Connection, number: str) -> list[Party] | None:
    """Lift `number`'s opt-out: the parties that were told of it (the staff rows of the
    message that made it; none if staff or Twilio made it), or None if it had none."""
    lifted = await conn.fetchrow(Q.lift_opt_out, number)
    if lifted is None:
        return None
    if lifted["inbound_id"] is None:
        return []
    return [Party(role, row["clinic_id"], patient)
            for row in await conn.fetch(Q.parties_told, lifted["inbound_id"])
            for role, column in (("patient", "patient_ids"), ("ride_contact", "ride_contact_of"))
            for patient in row[column]]


@dataclass(frozen=True, slots=True)
class InboxNumber:
    """The message of a staff inbox row, and the number it came from."""

    inbound_id: int
    from_e164: str


async def number_of_item(conn: asyncpg.Connection, item_id: int,
                         clinic_id: UUID) -> InboxNumber | None:
    return await _one(conn, InboxNumber, Q.number_of_item, item_id, clinic_id)


@dataclass(frozen=True, slots=True)
class ClinicVoice:
    """A clinic network's name and phone as its latest texts to some patients gave them."""

    name: str
    phone: str | None


async def clinic_of_patients(conn: asyncpg.Connection, clinic_id: UUID,
                             patients: list[UUID]) -> ClinicVoice | None:
    return await _one(conn, ClinicVoice, Q.clinic_of_patients, clinic_id, patients)


# -- reads the API returns as they are --------------------------------------------------

async def dicts(conn: asyncpg.Connection | asyncpg.Pool, query: str,
                *args: Any) -> list[dict[str, Any]]:
    """The rows of `query` as dicts (for the API's JSON)."""
    return [dict(r) for r in await conn.fetch(query, *args)]


async def one_dict(conn: asyncpg.Connection | asyncpg.Pool, query: str,
                   *args: Any) -> dict[str, Any] | None:
    """The row of `query` as a dict, or None."""
    row = await conn.fetchrow(query, *args)
    return None if row is None else dict(row)
