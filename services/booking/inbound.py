"""What booking does with the notifier's events (patients' replies to texts)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from services.booking import bookings, rules, store, waitlist
from services.booking.commands import UpdateRide
from services.booking.model import Booking, Patient
from shared.db import Connection
from shared.errors import DomainError
from shared.events import Envelope, Event
from shared.events.booking import PatientContactChanged
from shared.events.notifier import (
    PatientConfirmed,
    PatientOptedIn,
    PatientOptedOut,
    RescheduleRequested,
    RideConfirmed,
    RideContactOptedIn,
    RideContactOptedOut,
    WaitlistOfferAccepted,
)

log = logging.getLogger(__name__)
AboutBooking = TypeVar("AboutBooking", PatientConfirmed, RescheduleRequested, RideConfirmed)
"""The notifier's events about one booking."""


async def _booking_of(conn: Connection, env: Envelope[AboutBooking]) -> Booking | None:
    """The booking the event is about, if it is this patient's in this clinic."""
    booking = await store.booking(conn, env.clinic_id, env.payload.booking_id)
    if booking is None or booking.patient_id != env.patient_id:
        log.warning("%s for an unknown booking ignored (event %s)", env.event_type, env.event_id)
        return None
    return booking


async def on_patient_confirmed(conn: Connection, env: Envelope[PatientConfirmed]) -> None:
    if await _booking_of(conn, env) is not None:
        await store.set_confirmed(conn, env.payload.booking_id)


async def on_reschedule_requested(conn: Connection,
                                  env: Envelope[RescheduleRequested]) -> None:
    if await _booking_of(conn, env) is not None:
        await store.set_reschedule_requested(conn, env.payload.booking_id)


async def on_ride_confirmed(conn: Connection, env: Envelope[RideConfirmed]) -> None:
    booking = await _booking_of(conn, env)
    if booking is None or booking.status not in rules.TRANSITIONS["ride"].allowed:
        return
    p = env.payload
    await bookings.update_ride(conn, env.clinic_id, p.booking_id,
                               UpdateRide(ride_status="confirmed", driver_name=p.driver_name))


async def _set_consent(conn: Connection, env: Envelope[Any], consent: bool,
                       source: str) -> None:
    patient = await store.set_sms_consent(conn, env.clinic_id, env.patient, consent, source)
    if patient is None:
        log.warning("%s for an unknown patient ignored (event %s)", env.event_type, env.event_id)
        return
    await _contact_changed(conn, env, patient)


async def _contact_changed(conn: Connection, env: Envelope[Any], patient: Patient) -> None:
    await store.emit(conn, [store.event(
        PatientContactChanged(phone_e164=patient.phone_e164, language=patient.language,
                              sms_consent=patient.sms_consent, ride_contact=patient.ride_contact),
        env.clinic_id, env.patient_id, cause=env)])


OPTED_OUT = "opted out by text (STOP)"


async def on_opted_out(conn: Connection, env: Envelope[PatientOptedOut]) -> None:
    await _set_consent(conn, env, False, OPTED_OUT)


async def on_opted_in(conn: Connection, env: Envelope[PatientOptedIn]) -> None:
    """The number texted START: the consent an opt-out by text took comes back (nothing
    else: a family phone's START never gives consent a sibling did not give)."""
    patient = await store.restore_sms_consent(conn, env.clinic_id, env.patient,
                                              "opted in by text (START)", OPTED_OUT)
    if patient is None:
        log.info("%s changed nothing (event %s)", env.event_type, env.event_id)
        return
    await _contact_changed(conn, env, patient)


RIDE_CONTACT_OPTED_OUT = "ride contact opted out by text (STOP)"
RIDE_CONTACT_OPTED_IN = "ride contact opted in by text (START)"


async def on_ride_contact_opted(conn: Connection,
                                env: Envelope[RideContactOptedOut | RideContactOptedIn]) -> None:
    """The ride contact's number texted STOP (or START): their consent to texts follows, if
    that number is still the patient's ride contact's (START gives back only a consent that
    an opt-out by text took). Staff see why on the patient (`ride_contact_consent_source`)."""
    opted_in = isinstance(env.payload, RideContactOptedIn)
    patient = await store.set_ride_contact_consent(
        conn, env.clinic_id, env.patient, env.payload.phone_e164, opted_in,
        RIDE_CONTACT_OPTED_IN if opted_in else RIDE_CONTACT_OPTED_OUT, RIDE_CONTACT_OPTED_OUT)
    if patient is None:  # another ride contact now, unknown patient, or nothing to change
        log.info("%s changed nothing (event %s)", env.event_type, env.event_id)
        return
    await _contact_changed(conn, env, patient)


async def on_offer_accepted(conn: Connection, env: Envelope[WaitlistOfferAccepted]) -> None:
    p = env.payload
    try:
        async with conn.transaction():
            await waitlist.accept(conn, env.clinic_id, p.offer_id, env.patient)
    except DomainError as exc:  # taken by someone else first: they were told by WaitlistSlotTaken
        log.info("waitlist acceptance not applied (%s; event %s)", exc.code, env.event_id)


Handler = Callable[[Connection, Envelope[Any]], Awaitable[None]]

HANDLERS: dict[type[Event], Handler] = {
    PatientConfirmed: on_patient_confirmed,
    RescheduleRequested: on_reschedule_requested,
    RideConfirmed: on_ride_confirmed,
    WaitlistOfferAccepted: on_offer_accepted,
    PatientOptedOut: on_opted_out,
    PatientOptedIn: on_opted_in,
    RideContactOptedOut: on_ride_contact_opted,
    RideContactOptedIn: on_ride_contact_opted,
}
