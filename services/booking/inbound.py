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
                                    RescheduleRequested, RideConfirmed, RideContactOptedIn,
                                    RideContactOptedOut, WaitlistOfferAccepted)
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
    await _contact_changed(conn, env, patient)


async def _contact_changed(conn: asyncpg.Connection, env: Envelope, patient: asyncpg.Record) -> None:
    await enqueue(conn, [Envelope.new(
        PatientContactChanged(phone_e164=patient["phone_e164"], language=patient["language"],
                              sms_consent=patient["sms_consent"],
                              ride_contact=ride_contact_of(patient)),
        producer=PRODUCER, clinic_id=env.clinic_id, patient_id=env.patient_id, cause=env)])


OPTED_OUT = "opted out by text (STOP)"


async def on_opted_out(conn: asyncpg.Connection, env: Envelope) -> None:
    await _set_consent(conn, env, False, OPTED_OUT)


async def on_opted_in(conn: asyncpg.Connection, env: Envelope) -> None:
    """The number texted START: the consent an opt-out by text took comes back (nothing
    else: a family phone's START never gives consent a sibling did not give)."""
    patient = await conn.fetchrow(Q.restore_sms_consent, env.patient_id, env.clinic_id,
                                  "opted in by text (START)", OPTED_OUT)
    if patient is None:
        log.info("%s changed nothing (event %s)", env.event_type, env.event_id)
        return
    await _contact_changed(conn, env, patient)


RIDE_CONTACT_OPTED_OUT = "ride contact opted out by text (STOP)"
RIDE_CONTACT_OPTED_IN = "ride contact opted in by text (START)"


async def on_ride_contact_opted(conn: asyncpg.Connection, env: Envelope) -> None:
    """The ride contact's number texted STOP (or START): their consent to texts follows, if
    that number is still the patient's ride contact's (START gives back only a consent that
    an opt-out by text took). Staff see why on the patient (`ride_contact_consent_source`)."""
    opted_in = isinstance(env.payload, RideContactOptedIn)
    patient = await conn.fetchrow(
        Q.set_ride_contact_consent, env.patient_id, env.clinic_id, env.payload.phone_e164,
        opted_in, RIDE_CONTACT_OPTED_IN if opted_in else RIDE_CONTACT_OPTED_OUT,
        RIDE_CONTACT_OPTED_OUT)
    if patient is None:  # another ride contact now, unknown patient, or nothing to change
        log.info("%s changed nothing (event %s)", env.event_type, env.event_id)
        return
    await _contact_changed(conn, env, patient)


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
    RideContactOptedOut: on_ride_contact_opted,
    RideContactOptedIn: on_ride_contact_opted,
}
