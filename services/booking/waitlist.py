"""The waitlist: patients waiting for a slot; a cancelled booking's slot is offered to them
and the first who accepts gets it."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

from services.booking import bookings, store
from services.booking.commands import CancelSession, JoinWaitlist
from services.booking.model import Booking, WaitlistEntry
from services.booking.network import get_patient, get_site, session_type
from shared.auth import Principal
from shared.db import Connection
from shared.errors import Conflict, NotFound
from shared.events.booking import WaitlistSlotOpened, WaitlistSlotTaken


async def join(conn: Connection, who: Principal, cmd: JoinWaitlist) -> WaitlistEntry:
    await get_patient(conn, who.clinic_id, cmd.patient_id)
    await get_site(conn, who.clinic_id, cmd.site_id)
    await session_type(conn, who.clinic_id, cmd.session_type)
    return await store.insert_waitlist_entry(conn, uuid4(), who.clinic_id, cmd.patient_id,
                                             cmd.site_id, cmd.session_type, cmd.window_start,
                                             cmd.window_end)


async def cancel(conn: Connection, who: Principal, booking_id: UUID,
                 cmd: CancelSession) -> Booking:
    """Cancel a booked session (services/booking/bookings.py) and offer its slot to the
    patients waiting for one like it."""
    freed = await bookings.cancel(conn, who.actor, who.clinic_id, booking_id, cmd)
    await offer_freed_slot(conn, freed)
    return freed


async def offer_freed_slot(conn: Connection, freed: Booking) -> UUID | None:
    """Offer the slot of a cancelled booking to the patients waiting for one like it; the
    offer's id, if anyone waits."""
    if freed.starts_at <= datetime.now(UTC) or freed.mode != "clinic":
        return None  # (a remote or home visit frees no room to offer)
    waiting = await store.waiting_for_slot(conn, freed)
    if not waiting:
        return None
    offer_id, about = uuid4(), freed.about
    await store.insert_offer(conn, offer_id, freed, [w.patient_id for w in waiting])
    await store.emit(conn, [store.event(
        WaitlistSlotOpened(offer_id=offer_id, clinic_name=about.clinic_name,
                           clinic_sms_name=about.clinic_sms_name,
                           clinic_phone=about.clinic_phone, site_id=freed.site_id,
                           site_name=about.site_name, site_sms_name=about.site_sms_name,
                           site_phone=about.site_phone, site_timezone=about.site_timezone,
                           site_region=about.site_region, session_type=freed.session_type,
                           starts_at=freed.starts_at, patient_language=w.language),
        freed.clinic_id, w.patient_id) for w in waiting])
    return offer_id


async def accept(conn: Connection, clinic_id: UUID, offer_id: UUID, patient_id: UUID,
                 now: datetime | None = None) -> Booking:
    """The patient takes the offered slot, if nobody took it first."""
    offer = await store.lock_offer(conn, clinic_id, offer_id)
    if offer is None:
        raise NotFound("unknown offer")
    if patient_id not in offer.candidates:
        raise NotFound("no such offer for this patient")
    if offer.status != "open":
        raise Conflict("the slot was already taken", offer_status=offer.status)
    [booking] = await bookings.book_slots(conn, clinic_id, patient_id, offer.site_id,
                                          offer.session_type, [offer.starts_at], offer.room_id,
                                          offer.provider_id, now)
    await store.take_offer(conn, offer, patient_id, booking.id)
    await store.emit(conn, [store.event(WaitlistSlotTaken(offer_id=offer_id), clinic_id, p)
                            for p in offer.candidates if p != patient_id])
    return booking
