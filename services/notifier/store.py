"""The notifier's store: its named queries, one `Queries` per `.sql` file beside this module
(loaded once), and the functions that run those that return rows, which they give to the
rest of the service as frozen dataclasses (a NamedTuple for the dispatcher's hot path,
`DueText`; plain dicts for the API's JSON), never as asyncpg Records. A statement that
returns no rows, or one value, is run with its `Queries` directly
(`conn.execute(Q.name, ...)`, `conn.fetchval(INBOX.name, ...)`).

This module imports nothing else of the notifier's: every other module may import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple
from uuid import UUID

import asyncpg

from shared.db import Connection, Queries
from shared.events import Envelope
from shared.events.booking import SessionBooked, SessionRescheduled
from shared.events.notifier import SmsSent
from shared.outbox import insert_events_sql
from shared.rows import every as _all
from shared.rows import one as _one

PRODUCER = "notifier"
"""The `producer` of the notifier's events."""
THIRD_PARTY = frozenset({"pickup", "support"})
"""Kinds of text that go to someone else than the patient: the driver (pickup), a home
session's support person (support); `DueText.ride_contact_phone` is their number."""
_HERE = Path(__file__).parent

Q = Queries(_HERE / "queries.sql", fragments={"sms_sent_events": insert_events_sql(
    SmsSent, source="sent", producer=PRODUCER, event_id="event_id", clinic_id="clinic_id",
    patient_id="patient_id", order_by="id", trace_context="trace_context", payload={
        "text_id": "id", "kind": "kind", "booking_id": "booking_id", "provider_sid": "sid",
        "segments": "segments"})})
"""Texts: scheduled from events, dispatched (`mark_sent` writes their `SmsSent` events,
generated from the model), their delivery receipts, sending pauses; the clinics' policies."""
INBOX = Queries(_HERE / "inbox.sql")
"""Texts people send us, opt-outs, and the staff inbox."""
VIEWS = Queries(_HERE / "views.sql")
"""The staff screens' aggregate reads (JSON built by PostgreSQL)."""
OPS = Queries(_HERE / "ops.sql")
"""The ops figures (no patient data)."""
RETENTION = Queries(_HERE / "retention.sql")
"""The purges of the notifier's own tables."""


# -- scheduling -------------------------------------------------------------------------

APPOINTMENT_FIELDS = ("clinic_name", "clinic_phone", "site_name", "site_address", "site_phone",
                      "site_timezone", "session_type", "is_dosing", "fasting_rule",
                      "patient_language", "starts_at", "ends_at", "site_id", "site_region",
                      "clinic_sms_name", "site_sms_name")
"""The `SessionBooked` fields `upsert_appointments` takes after booking, clinic, patient and
version (then the ride contact's name and phone, then `VISIT_FIELDS` and the support
person's name and phone)."""
VISIT_FIELDS = ("mode", "join_link", "patient_timezone")
TEXT_COLUMNS = ("clinic_id", "patient_id", "booking_id", "booking_version", "kind", "due_at",
                "valid_until", "status", "status_reason", "trace_context")
"""The columns of the texts `insert_texts` writes (the trace context: the `traceparent` of
the event that scheduled the text, None while tracing is off)."""


async def upsert_appointments(conn: Connection,
                              booked: list[tuple[Envelope[Any],
                                                 SessionBooked | SessionRescheduled]],
                              ) -> set[UUID]:
    """Store the appointments of these bookings (one each); returns the bookings stored: all
    but those we already hold a newer version of."""
    columns = [[b.booking_id for _, b in booked], [e.clinic_id for e, _ in booked],
               [e.patient_id for e, _ in booked], [b.version for _, b in booked]] + [
        [getattr(b, name) for _, b in booked] for name in APPOINTMENT_FIELDS] + [
        [b.ride_contact.name if b.ride_contact else None for _, b in booked],
        [b.ride_contact.phone_e164 if b.ride_contact else None for _, b in booked]] + [
        [getattr(b, name) for _, b in booked] for name in VISIT_FIELDS] + [
        [b.support_person.name if b.support_person else None for _, b in booked],
        [b.support_person.phone_e164 if b.support_person else None for _, b in booked],
        [b.prep_items for _, b in booked]]
    return set(await conn.fetchval(Q.upsert_appointments, *columns))


async def insert_texts(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """Write texts (`TEXT_COLUMNS`) by binary COPY: the cheapest way in for many rows."""
    if rows:
        await conn.copy_records_to_table("texts", records=rows, columns=TEXT_COLUMNS)


@dataclass(frozen=True, slots=True)
class PatientSite:
    """The site of a patient's latest appointment (texts about their course name it)."""

    site_id: UUID | None
    site_region: str | None
    site_timezone: str


async def latest_site(conn: Connection, patient_id: UUID) -> PatientSite | None:
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


async def policies_for_sites(conn: Connection,
                             keys: set[tuple[UUID, UUID | None, str | None]]) -> list[PolicyRow]:
    """The policy rows of these (clinic, site, region)."""
    if not keys:
        return []
    clinics, sites, regions = (list(c) for c in zip(*keys, strict=True))
    return await _all(conn, PolicyRow, Q.policies_for_sites, clinics, sites, regions)


# -- dispatching ------------------------------------------------------------------------

class DueText(NamedTuple):
    """A text picked to go out, with everything the dispatcher decides by (the columns of
    the `text_context` fragment, in its order): the text, its contact, its appointment or
    slot offer (for a text about no booking, the patient's latest appointment), the clinic's
    policy with quiet hours resolved (None: the service's default), and how many texts the
    patient was sent today and in 7 days (counted only when a cap applies).

    A NamedTuple, where the other rows are frozen dataclasses: as immutable and as typed,
    and made from the record in C, about 1 us a row where a frozen dataclass of these 39
    fields takes 7-10 us (the dispatcher makes one for every text it picks)."""

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
    mode: str
    join_link: str | None
    prep_items: str | None
    recipient_timezone: str | None
    trace_context: str | None
    daily_cap: int | None
    weekly_cap: int | None
    critical_past_caps: bool | None
    disabled_kinds: list[str] | None
    quiet_start: int | None
    quiet_end: int | None
    sent_today: int
    sent_week: int


Overrides = dict[tuple[UUID, str, str], tuple[int, str | None]]
"""Networks' current template overrides: (clinic, template kind, language) -> (version,
words or None for the built-in ones)."""


async def latest_overrides(conn: Connection, clinic_ids: set[UUID]) -> Overrides:
    """The current template overrides of these networks."""
    if not clinic_ids:
        return {}
    return {(r["clinic_id"], r["kind"], r["language"]): (r["version"], r["body"])
            for r in await conn.fetch(Q.latest_overrides, list(clinic_ids))}


def due_texts(rows: list[asyncpg.Record]) -> list[DueText]:
    """`DueText`s built by position (the cheapest way), once the columns are checked."""
    if rows and tuple(rows[0].keys()) != DueText._fields:
        raise ValueError("text_context's columns are not DueText's fields, in order")
    return list(map(DueText._make, rows))


async def pick_due(conn: Connection, critical_kinds: list[str],
                   limit: int) -> list[DueText]:
    """Up to `limit` due texts, in due order, locked until the transaction ends (others pass
    them by); `critical_kinds`: those whose texts are not counted when they may pass caps."""
    return due_texts(await conn.fetch(pick_due_sql(limit), critical_kinds))


_PICK_LIMIT = "LIMIT $2"


@cache
def pick_due_sql(limit: int) -> str:
    """`pick_due` with its batch size written in. Given as a parameter, the LIMIT keeps
    PostgreSQL from costing one plan for every batch (it takes a tenth of the rows for an
    unknown LIMIT), so it planned this join again for every batch, about 1 ms (2 us a text
    of 500); written in, it keeps a plan after its first five batches."""
    if Q.pick_due.count(_PICK_LIMIT) != 1:
        raise ValueError(f"pick_due: no single {_PICK_LIMIT!r} to write the batch size in")
    return Q.pick_due.replace(_PICK_LIMIT, f"LIMIT {int(limit)}")


async def texts_in_context(conn: Connection, critical_kinds: list[str],
                           ids: list[int]) -> list[DueText]:
    """The texts `ids` as `pick_due` gives them (not locked, whatever their status)."""
    return due_texts(await conn.fetch(Q.texts_in_context, critical_kinds, ids))


async def hand_over(conn: Connection, ids: list[int],
                    claims: list[datetime | None]) -> set[int]:
    """Of these claimed texts, those still this dispatcher's that still stand, marked as
    handed over again (`hand_over`)."""
    return {r[0] for r in await conn.fetch(Q.hand_over, ids, claims)}


async def mark_sent(conn: Connection, ids: list[int], claims: list[datetime],
                    sids: list[str]) -> set[int]:
    """Record texts the provider took, with their `SmsSent` events (one statement); returns
    those recorded (not those recorded from their receipt first, nor lost claims)."""
    return {r[0] for r in await conn.fetch(Q.mark_sent, ids, claims, sids)}


async def sids_of_texts(conn: Connection, ids: list[int]) -> dict[int, str | None]:
    return {r[0]: r[1] for r in await conn.fetch(Q.sids_of_texts, ids)}


async def release_stale_claims(conn: Connection, stale_seconds: float,
                               grace_seconds: float) -> int:
    """Put back the claims of dispatchers that died or are stuck; returns how many."""
    return len(await conn.fetch(Q.release_stale_claims, stale_seconds, grace_seconds))


async def take_lease(conn: Connection | asyncpg.Pool, seconds: float) -> int:
    """A new dispatcher lease lasting `seconds` unless renewed; returns its id."""
    lease: int = await conn.fetchval(Q.take_lease, seconds)
    return lease


async def renew_lease(conn: Connection | asyncpg.Pool, lease: int, seconds: float) -> bool:
    """Extend `lease` by `seconds` from now; False if it had lapsed (it is not revived)."""
    return await conn.fetchval(Q.renew_lease, lease, seconds) is not None


async def drop_lease(conn: Connection | asyncpg.Pool, lease: int) -> None:
    """End `lease` (its dispatcher stops)."""
    await conn.execute(Q.drop_lease, lease)


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
    trace_context: str | None
    """The `traceparent` of the event that scheduled it (its receipt's span links to it)."""


async def text_by_sid(conn: Connection, sid: str) -> ReceiptText | None:
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
    segments: int
    """Set when the text was handed over (the only texts this is asked of)."""


async def sent_per_receipt(conn: Connection, text_id: int, sid: str) -> SentText | None:
    """Record text `text_id` as sent as `sid` (`sent_per_receipt`), if it was handed over and
    has no SID; None if not."""
    return await _one(conn, SentText, Q.sent_per_receipt, text_id, sid)


@dataclass(frozen=True, slots=True)
class EarlyReceipt:
    provider_sid: str
    status: str
    error_code: str | None
    received_at: datetime


async def take_early_receipts(conn: Connection) -> list[EarlyReceipt]:
    """The kept receipts whose SID is now stored, removed as they are taken."""
    return await _all(conn, EarlyReceipt, Q.take_early_receipts)


@dataclass(frozen=True, slots=True)
class SenderPause:
    code: str
    meaning: str
    since: datetime


async def sender_pause(conn: Connection, key: str) -> SenderPause | None:
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


async def parties_of(conn: Connection, number: str) -> list[Party]:
    """Everyone `number` is to us (patients with it, patients whose ride contact has it)."""
    return await _all(conn, Party, INBOX.parties_of_number, number)


async def lift_opt_out(conn: Connection, number: str) -> list[Party] | None:
    """Lift `number`'s opt-out: the parties that were told of it (the staff rows of the
    message that made it; none if staff or Twilio made it), or None if it had none."""
    lifted = await conn.fetchrow(INBOX.lift_opt_out, number)
    if lifted is None:
        return None
    if lifted["inbound_id"] is None:
        return []
    return [Party(role, row["clinic_id"], patient)
            for row in await conn.fetch(INBOX.parties_told, lifted["inbound_id"])
            for role, column in (("patient", "patient_ids"), ("ride_contact", "ride_contact_of"))
            for patient in row[column]]


@dataclass(frozen=True, slots=True)
class InboxNumber:
    """The message of a staff inbox row, and the number it came from."""

    inbound_id: int
    from_e164: str


async def number_of_item(conn: Connection, item_id: int,
                         clinic_id: UUID) -> InboxNumber | None:
    return await _one(conn, InboxNumber, INBOX.number_of_item, item_id, clinic_id)


@dataclass(frozen=True, slots=True)
class ClinicVoice:
    """A clinic network's name and phone as its latest texts to some patients gave them."""

    name: str
    phone: str | None


async def clinic_of_patients(conn: Connection, clinic_id: UUID,
                             patients: list[UUID]) -> ClinicVoice | None:
    return await _one(conn, ClinicVoice, INBOX.clinic_of_patients, clinic_id, patients)


# -- reads the API returns as they are --------------------------------------------------

async def dicts(conn: Connection | asyncpg.Pool, query: str,
                *args: Any) -> list[dict[str, Any]]:
    """The rows of `query` as dicts (for the API's JSON)."""
    return [dict(r) for r in await conn.fetch(query, *args)]


async def one_dict(conn: Connection | asyncpg.Pool, query: str,
                   *args: Any) -> dict[str, Any] | None:
    """The row of `query` as a dict, or None."""
    row = await conn.fetchrow(query, *args)
    return None if row is None else dict(row)
