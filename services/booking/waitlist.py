"""The waitlist: patients waiting for a slot; a cancelled booking's slot is offered to them
and the first who accepts gets it."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

import asyncpg

from shared.auth import Principal
from services.booking.bookings import book_slots

from services.booking.commands import JoinWaitlist
from services.booking.db import PRODUCER, Q
from services.booking.network import get_patient, get_site, session_type
from shared.errors import Conflict, NotFound
from shared.events import Envelope
from shared.events.booking import WaitlistSlotOpened, WaitlistSlotTaken
from shared.outbox import enqueue


async def join(conn: asyncpg.Connection, who: Principal, cmd: JoinWaitlist) -> asyncpg.Record:
    await get_patient(conn, who.clinic_id, cmd.patient_id)
    await get_site(conn, who.clinic_id, cmd.site_id)
    await session_type(conn, who.clinic_id, cmd.session_type)
    return await conn.fetchrow(Q.insert_waitlist_entry, uuid4(), who.clinic_id, cmd.patient_id,
                               cmd.site_id, cmd.session_type, cmd.window_start, cmd.window_end)


async def offer_freed_slot(conn: asyncpg.Connection, freed: asyncpg.Record) -> asyncpg.Record | None:
    """Offer the slot of a cancelled booking to the patients waiting for one like it."""
    if freed["starts_at"] <= datetime.now(UTC):
        return None
    waiting = await conn.fetch(Q.waiting_for_slot, freed["site_id"], freed["session_type"],
                               freed["starts_at"], freed["patient_id"])
    if not waiting:
        return None
    offer = await conn.fetchrow(
        Q.insert_offer, uuid4(), freed["clinic_id"], freed["site_id"], freed["room_id"],
        freed["provider_id"], freed["session_type"], freed["starts_at"], freed["id"],
        [w["patient_id"] for w in waiting])
    await enqueue(conn, [Envelope.new(
        WaitlistSlotOpened(offer_id=offer["id"], clinic_name=freed["clinic_name"],
                           clinic_sms_name=freed["clinic_sms_name"],
                           clinic_phone=freed["clinic_phone"], site_id=freed["site_id"],
                           site_name=freed["site_name"], site_sms_name=freed["site_sms_name"],
                           site_phone=freed["site_phone"], site_timezone=freed["site_timezone"],
                           site_region=freed["site_region"], session_type=freed["session_type"],
                           starts_at=freed["starts_at"],
                           patient_language=w["language"]),
        producer=PRODUCER, clinic_id=freed["clinic_id"], patient_id=w["patient_id"])
        for w in waiting])
    return offer


async def accept(conn: asyncpg.Connection, clinic_id: UUID, offer_id: UUID, patient_id: UUID,
                 now: datetime | None = None) -> asyncpg.Record:
    """The patient takes the offered slot, if nobody took it first."""
    offer = await conn.fetchrow(Q.lock_offer, offer_id, clinic_id)
    if offer is None:
        raise NotFound("unknown offer")
    if patient_id not in offer["candidates"]:
        raise NotFound("no such offer for this patient")
    if offer["status"] != "open":
        raise Conflict("the slot was already taken", offer_status=offer["status"])
    [booking] = await book_slots(conn, clinic_id, patient_id, offer["site_id"], offer["session_type"],
                            [offer["starts_at"]], offer["room_id"], offer["provider_id"], now)
    await conn.execute(Q.take_offer, offer_id, patient_id, booking["id"])
    await conn.execute(Q.waitlist_booked, patient_id, offer["site_id"], offer["session_type"])
    others = [p for p in offer["candidates"] if p != patient_id]
    await enqueue(conn, [Envelope.new(WaitlistSlotTaken(offer_id=offer_id), producer=PRODUCER,
                                      clinic_id=clinic_id, patient_id=p) for p in others])
    return booking


