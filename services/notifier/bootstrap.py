"""Composition root of the notifier."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from services.notifier import codes, handlers, ops, views, webhooks
from services.notifier.api import router
from services.notifier.dispatcher import MAX_BATCHES, Dispatcher
from services.notifier.held import HeldWebhooks
from services.notifier.schedule import QuietHours
from services.notifier.senders import RecordingSender, SmsSender
from services.notifier.settings import NotifierSettings
from services.notifier.store import RETENTION, Q
from services.notifier.twilio_sender import TwilioSender
from shared.auth import api_key_handlers
from shared.consumer import Handler
from shared.events import Event
from shared.events.booking import (
    OnlineCodeRequested,
    PatientContactChanged,
    PatientNoShow,
    PatientRegistered,
    RideDetailsUpdated,
    SessionBooked,
    SessionRescheduled,
    WaitlistSlotOpened,
    WaitlistSlotTaken,
)
from shared.events.plans import IntegrationSessionMissing, PlanProgressed, PlanSessionDue
from shared.retention import Purge
from shared.runtime import ServiceRuntime, service_app
from shared.topics import BOOKING_EVENTS, PLANS_EVENTS


def purges(settings: NotifierSettings) -> list[Purge]:
    """The notifier's own tables that retention purges, with their periods."""
    return [
        Purge("recorded_sms", RETENTION.purge_recorded_sms, settings.retention_recorded_sms_days),
        Purge(
            "early_receipts", RETENTION.purge_early_receipts, settings.retention_early_receipts_days
        ),
    ]


def make_sender(settings: NotifierSettings, runtime: ServiceRuntime) -> SmsSender:
    """Twilio when credentials are configured, else the local recording sender."""
    if settings.twilio_account_sid and settings.twilio_auth_token:
        return TwilioSender(settings)
    return RecordingSender(runtime.db)


def dispatch_batch_size(settings: NotifierSettings, sender: SmsSender) -> int:
    """The configured batch size, but no more texts in all the batches being handed over
    than a paced sender hands over in a quarter of the stale-claim time: a claimed text
    still waiting for its turn should never look like the claim of a stuck dispatcher."""
    if not isinstance(sender, TwilioSender):
        return settings.dispatch_batch_size
    paced = int(settings.twilio_segments_per_second * settings.stale_claim_seconds / 4
                / MAX_BATCHES)
    return max(1, min(settings.dispatch_batch_size, paced))


def event_handlers(quiet: QuietHours) -> dict[type[Event], Handler]:
    """The handler of each event the notifier consumes (`quiet`: the service's quiet hours)."""
    return {
        OnlineCodeRequested: codes.on_code_requested,
        PatientRegistered: handlers.on_patient_registered,
        SessionBooked: partial(handlers.on_session_booked, quiet=quiet),
        SessionRescheduled: partial(handlers.on_session_rescheduled, quiet=quiet),
        PatientContactChanged: handlers.on_contact_changed,
        RideDetailsUpdated: handlers.on_ride_updated,
        WaitlistSlotOpened: partial(handlers.on_slot_opened, quiet=quiet),
        WaitlistSlotTaken: handlers.on_slot_taken,
        **{event: handlers.on_booking_over for event in handlers.STATUS_OF},
        PatientNoShow: partial(handlers.on_no_show, quiet=quiet),
        PlanSessionDue: partial(handlers.on_session_due, quiet=quiet),
        IntegrationSessionMissing: partial(handlers.on_integration_missing, quiet=quiet),
        # RemsMonitoringFormOverdue is for staff, never texted to the patient
        PlanProgressed: handlers.on_plan_progressed,
    }


def dispatcher_worker(settings: NotifierSettings, quiet: QuietHours
                      ) -> Callable[[ServiceRuntime], Coroutine[Any, Any, None]]:
    """The dispatcher as the runtime's worker: sending through the configured sender."""

    async def dispatch(rt: ServiceRuntime) -> None:
        sender = make_sender(settings, rt)
        try:
            await Dispatcher(rt.db, sender, schema=settings.schema,
                             batch_size=dispatch_batch_size(settings, sender),
                             poll_seconds=settings.dispatch_poll_seconds,
                             stale_claim_seconds=settings.stale_claim_seconds,
                             callback_grace_seconds=settings.callback_grace_seconds,
                             quiet=quiet, probe_seconds=settings.sender_probe_seconds,
                             unreachable_marks_after=settings.unreachable_marks_after,
                             lease_seconds=settings.dispatcher_lease_seconds,
                             listen_pool=rt.session_db).run()
        finally:
            if hasattr(sender, "close"):
                await sender.close()

    return dispatch


def code_sender_worker(settings: NotifierSettings
                       ) -> Callable[[ServiceRuntime], Coroutine[Any, Any, None]]:
    """The code sender (services/notifier/codes.py) as the runtime's worker: sending the
    verification codes through the configured sender."""

    async def send_codes(rt: ServiceRuntime) -> None:
        sender = make_sender(settings, rt)
        try:
            await codes.CodeSender(rt.db, sender, settings.online_code_key,
                                   schema=settings.schema).run(rt.session_db)
        finally:
            if hasattr(sender, "close"):
                await sender.close()

    return send_codes


def bootstrap(settings: NotifierSettings | None = None) -> FastAPI:
    """Build the notifier app: consumers of booking and plan events, the dispatcher, HTTP."""
    settings = settings or NotifierSettings()
    runtime = ServiceRuntime(settings, Path(__file__).with_name("migrations"))
    runtime.audit.owner_query = Q.patient_owners
    quiet = QuietHours(start=settings.quiet_hours_start, end=settings.quiet_hours_end)
    runtime.add_worker("code-sender", code_sender_worker(settings))
    each = event_handlers(quiet)
    # bookings are scheduled a batch at a time
    in_order = handlers.in_order(each, partial(handlers.on_sessions_booked, quiet=quiet))
    runtime.consume("notifier", api_key_handlers(), BOOKING_EVENTS, PLANS_EVENTS,
                    batch_handlers={event: in_order for event in each})
    runtime.add_worker("dispatcher", dispatcher_worker(settings, quiet))
    runtime.add_probe(ops.text_probe(settings.ops_late_text_seconds))
    held = HeldWebhooks(settings.webhook_held_max)
    runtime.add_worker("held-webhooks", lambda rt: held.run(rt.db))
    runtime.add_probe(held.probe())
    for purge in purges(settings):
        runtime.add_purge(purge)
    app = service_app(runtime, "Notifier", router, views.router, webhooks.router, ops.router)
    app.state.held_webhooks = held
    return app
