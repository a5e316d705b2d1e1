"""What booking does with the notifier's events (patients' replies to texts)."""

from __future__ import annotations

import logging

import asyncpg

from services.booking import bookings, waitlist
from services.booking.commands import UpdateRide
from services.booking.db import PRODUCER, Q
from services.booking.network import ride_contact_of
from shared.errors import DomainError
from shared.events import Envelope
from shared.events.booking import PatientContactChanged
from shared.events.notifier import (PatientConfirmed, PatientOptedIn, PatientOptedOut,
                                    RescheduleRequested, RideConfirmed, WaitlistOfferAccepted)
from shared.outbox import enqueue

log = logging.getLogger(__name__)


async def _booking_of(conn, env: Envelope):
    """The booking the event is about, if it is this patient's in this clinic."""
    row = await conn.fetchrow(Q.booking, env.payload.booking_id, env.clinic_id)
    if row is None or row["patient_id"] != env.patient_id:
        log.warning("%s for an unknown booking ignored (event %s)", env.event_type, env.event_id)
        return None
    return row


async def on_patient_confirmed(conn: asyncpg.Connection, env: Envelope) -> None:
    if await _booking_of(conn, env) is not None:
        await conn.execute(Q.set_confirmed, env.payload.booking_id)


async def on_reschedule_requested(conn: asyncpg.Connection, env: Envelope) -> None:
    if await _booking_of(conn, env) is not None:
        await conn.execute(Q.set_reschedule_requested, env.payload.booking_id)


async def on_ride_confirmed(conn: asyncpg.Connection, env: Envelope) -> None:
    row = await _booking_of(conn, env)
    if row is None or row["status"] not in ("booked", "arrived"):
        return
    p: RideConfirmed = env.payload  # type: ignore[assignment]
    await bookings.update_ride(conn, env.clinic_id, p.booking_id,
                               UpdateRide(ride_status="confirmed", driver_name=p.driver_name))


async def _set_consent(conn: asyncpg.Connection, env: Envelope, consent: bool, source: str) -> None:
    patient = await conn.fetchrow(Q.set_sms_consent, env.patient_id, env.clinic_id, consent, source)
    if patient is None:
        log.warning("%s for an unknown patient ignored (event %s)", env.event_type, env.event_id)
        return
    await enqueue(conn, [Envelope.new(
        PatientContactChanged(phone_e164=patient["phone_e164"], language=patient["language"],
                              sms_consent=consent, ride_contact=ride_contact_of(patient)),
        producer=PRODUCER, clinic_id=env.clinic_id, patient_id=env.patient_id, cause=env)])


async def on_opted_out(conn: asyncpg.Connection, env: Envelope) -> None:
    await _set_consent(conn, env, False, "opted out by text (STOP)")


async def on_opted_in(conn: asyncpg.Connection, env: Envelope) -> None:
    await _set_consent(conn, env, True, "opted in by text (START)")


async def on_offer_accepted(conn: asyncpg.Connection, env: Envelope) -> None:
    p: WaitlistOfferAccepted = env.payload  # type: ignore[assignment]
    try:
        async with conn.transaction():
            await waitlist.accept(conn, env.clinic_id, p.offer_id, env.patient_id)
    except DomainError as exc:  # taken by someone else first: they were told by WaitlistSlotTaken
        log.info("waitlist acceptance not applied (%s; event %s)", exc.code, env.event_id)


HANDLERS = {
    PatientConfirmed: on_patient_confirmed,
    RescheduleRequested: on_reschedule_requested,
    RideConfirmed: on_ride_confirmed,
    WaitlistOfferAccepted: on_offer_accepted,
    PatientOptedOut: on_opted_out,
    PatientOptedIn: on_opted_in,
}
