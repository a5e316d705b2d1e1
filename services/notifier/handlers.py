"""Notifier event handlers: keep contacts and appointments, schedule texts.

Plain functions on the consumer's connection, inside its transaction: a redelivered event
is skipped by the consumer before it gets here, so texts are scheduled exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from services.notifier import policy as policies
from services.notifier import store
from services.notifier.policy import Policy
from services.notifier.schedule import Appointment, QuietHours, move, plan_texts
from services.notifier.store import Q
from shared import tracing
from shared.consumer import BatchHandler, Handler
from shared.db import Connection
from shared.events import Envelope, Event
from shared.events.booking import (
    PatientCheckedIn,
    PatientContactChanged,
    PatientNoShow,
    PatientRegistered,
    RideDetailsUpdated,
    SessionBooked,
    SessionCancelled,
    SessionCompleted,
    SessionRescheduled,
    WaitlistSlotOpened,
    WaitlistSlotTaken,
)
from shared.events.plans import IntegrationSessionMissing, PlanProgressed, PlanSessionDue

STATUS_OF: dict[type[Event], str] = {
    SessionCancelled: "cancelled", PatientCheckedIn: "arrived", SessionCompleted: "fulfilled",
    PatientNoShow: "noshow"}
Booked = SessionBooked | SessionRescheduled
"""The events that (re)schedule an appointment's texts."""


async def on_patient_registered(conn: Connection, env: Envelope[PatientRegistered]) -> None:
    p = env.payload
    await conn.execute(Q.upsert_contact, env.patient_id, env.clinic_id, p.phone_e164,
                       p.language, p.sms_consent)


async def on_session_booked(conn: Connection, env: Envelope[Booked], *,
                            quiet: QuietHours = QuietHours(), now: datetime | None = None) -> None:
    """Remember the appointment and schedule its texts (confirmation, prep, reminders)."""
    await on_sessions_booked(conn, [env], quiet=quiet, now=now)


async def on_sessions_booked(conn: Connection, envs: Sequence[Envelope[Booked]], *,
                             quiet: QuietHours = QuietHours(), now: datetime | None = None) -> None:
    """`on_session_booked` for several bookings (each once) with three statements: the
    appointments stored, the clinics' policies read, the texts inserted."""
    booked = [(env, env.payload) for env in envs]
    stored = await store.upsert_appointments(conn, booked)
    # those not stored: we already hold a newer version of that booking
    booked = [(env, b) for env, b in booked if b.booking_id in stored]
    by_site = await policies.load_many(
        conn, {(e.clinic_id, b.site_id, b.site_region) for e, b in booked}, quiet)
    now = now or datetime.now(UTC)
    await store.insert_texts(conn, [
        row for env, b in booked
        for row in _texts_of(env, b, by_site[(env.clinic_id, b.site_id, b.site_region)], now)])


def _texts_of(
    env: Envelope[Booked], b: Booked, policy: Policy, now: datetime
) -> list[tuple[Any, ...]]:
    """The texts a booking's version plans, as `store.TEXT_COLUMNS` rows."""
    appointment = Appointment(b.starts_at, b.ends_at, b.patient_timezone or b.site_timezone,
                              b.is_dosing, has_ride_contact=b.ride_contact is not None,
                              mode=b.mode, has_support=b.support_person is not None)
    trace_context = tracing.context_of(env.event_id)
    return [(env.clinic_id, env.patient_id, b.booking_id, b.version, p.kind, p.due_at,
             p.valid_until, "skipped" if p.skipped else "pending",
             "booked too late to be useful" if p.skipped else None, trace_context)
            for p in plan_texts(appointment, now, policy.quiet) if policy.allows(p.kind)]


def in_order(handlers: dict[type[Event], Handler], sessions_booked: BatchHandler) -> BatchHandler:
    """One batch handler for events of `handlers`' types that gives the same result as
    taking them one by one: runs of SessionBooked events (of different bookings) go to
    `sessions_booked` together, every other event to its own handler, in the order they came."""

    async def handle(conn: Connection, envs: list[Envelope[Any]]) -> None:
        run: dict[str, Any] = {}  # booking id -> its SessionBooked event
        for env in envs:
            booked = type(env.payload) is SessionBooked
            if booked and env.payload.booking_id not in run:
                run[env.payload.booking_id] = env
                continue
            if run:
                await sessions_booked(conn, list(run.values()))
                run = {}
            if booked:
                run[env.payload.booking_id] = env
            else:
                await handlers[type(env.payload)](conn, env)
        if run:
            await sessions_booked(conn, list(run.values()))

    return handle


async def on_session_rescheduled(
    conn: Connection,
    env: Envelope[SessionRescheduled],
    *,
    quiet: QuietHours = QuietHours(),
    now: datetime | None = None,
) -> None:
    """The appointment moved: its pending texts are cancelled and planned again for the new
    time (a text never quotes a stale time)."""
    b = env.payload
    await conn.execute(Q.cancel_pending_texts, b.booking_id, b.version, "appointment moved", [])
    await on_session_booked(conn, env, quiet=quiet, now=now)


async def on_booking_over(conn: Connection, env: Envelope[Any]) -> None:
    """Cancelled, checked in, completed or no-show: no more reminders for this booking."""
    p = env.payload
    status = STATUS_OF[type(p)]
    if await conn.fetchval(Q.set_appointment_status, p.booking_id, status, p.version) is None:
        return  # unknown booking, or we already know a newer state
    keep = ["pickup"] if status == "arrived" else []  # checked in: the driver still needs to know
    await conn.execute(
        Q.cancel_pending_texts, p.booking_id, p.version + 1, f"appointment {status}", keep
    )


async def on_contact_changed(conn: Connection, env: Envelope[PatientContactChanged]) -> None:
    p = env.payload
    await conn.execute(Q.update_contact, env.patient_id, p.phone_e164, p.language, p.sms_consent)


async def on_slot_opened(conn: Connection, env: Envelope[WaitlistSlotOpened], *,
                         quiet: QuietHours = QuietHours()) -> None:
    """Offer a freed slot to a waiting patient (the first to reply 4 gets it): now, or when
    quiet hours end at the site."""
    p = env.payload
    if not await conn.fetchval(Q.insert_offer, p.offer_id, env.patient_id, env.clinic_id,
                               p.clinic_name, p.clinic_phone, p.site_name, p.site_timezone,
                               p.starts_at, p.patient_language, p.site_id, p.site_region,
                               p.clinic_sms_name, p.site_sms_name, p.site_phone):
        return
    policy = await policies.load(conn, env.clinic_id, quiet, site_id=p.site_id,
                                 region=p.site_region)
    if policy.allows("waitlist_offer"):
        now = datetime.now(UTC)
        due = move("waitlist_offer", now, ZoneInfo(p.site_timezone), policy.quiet, not_before=now)
        await conn.execute(Q.offer_text, env.clinic_id, env.patient_id, p.offer_id,
                           "waitlist_offer", due, p.starts_at - timedelta(hours=2),
                           tracing.context_of(env.event_id))


async def on_slot_taken(conn: Connection, env: Envelope[WaitlistSlotTaken]) -> None:
    """Someone else took the slot: the offer is withdrawn, and the patient told if offered."""
    p = env.payload
    if await conn.fetchval(Q.offer_taken, p.offer_id, env.patient_id):
        now = datetime.now(UTC)  # quiet hours: the dispatcher holds it until they end
        await conn.execute(Q.offer_text, env.clinic_id, env.patient_id, p.offer_id,
                           "waitlist_taken", now, now + timedelta(days=1),
                           tracing.context_of(env.event_id))


async def follow_up(conn: Connection, env: Envelope[Any], kind: str, *, valid_for: timedelta,
                    quiet: QuietHours = QuietHours(), booking_id: UUID | None = None,
                    version: int | None = None) -> None:
    """A text about the patient's course (not a reminder of a booking): now, or when quiet
    hours end at the patient's site."""
    site = await store.latest_site(conn, env.patient)
    if site is None:
        return  # nothing to name the clinic by: staff do
    policy = await policies.load(conn, env.clinic_id, quiet, site_id=site.site_id,
                                 region=site.site_region)
    if not policy.allows(kind):
        return  # the clinic does not send these
    now = datetime.now(UTC)
    due = move(kind, now, ZoneInfo(site.site_timezone), policy.quiet, not_before=now)
    if due is None:  # its words count from today, and today has no allowed moment left
        await conn.execute(Q.follow_up_text, env.clinic_id, env.patient_id, booking_id, version,
                           kind, now, now + valid_for, "skipped", "quiet hours until the day it "
                           "names is over", tracing.context_of(env.event_id))
        return
    await conn.execute(Q.follow_up_text, env.clinic_id, env.patient_id, booking_id, version, kind,
                       due, due + valid_for, "pending", None, tracing.context_of(env.event_id))


async def on_no_show(
    conn: Connection, env: Envelope[PatientNoShow], *, quiet: QuietHours = QuietHours()
) -> None:
    await on_booking_over(conn, env)
    p = env.payload
    await follow_up(conn, env, "missed", valid_for=timedelta(days=2), quiet=quiet,
                    booking_id=p.booking_id, version=p.version)


async def on_session_due(
    conn: Connection, env: Envelope[PlanSessionDue], *, quiet: QuietHours = QuietHours()
) -> None:
    await follow_up(conn, env, "session_due", valid_for=timedelta(days=3), quiet=quiet)


async def on_integration_missing(conn: Connection, env: Envelope[IntegrationSessionMissing], *,
                                 quiet: QuietHours = QuietHours()) -> None:
    await follow_up(conn, env, "follow_up_due", valid_for=timedelta(days=1), quiet=quiet)


async def on_ride_updated(conn: Connection, env: Envelope[RideDetailsUpdated]) -> None:
    p = env.payload
    await conn.execute(Q.set_ride_status, p.booking_id, p.ride_status)


async def on_plan_progressed(conn: Connection, env: Envelope[PlanProgressed]) -> None:
    p = env.payload
    await conn.execute(Q.upsert_plan_progress, p.plan_id, env.patient_id, p.template,
                       p.sessions_target, p.sessions_booked, p.sessions_completed)
