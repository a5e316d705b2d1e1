"""Composition root of the plans service."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from fastapi import FastAPI

from services.plans import handlers, ops
from services.plans.api import router
from services.plans.settings import PlansSettings
from services.plans.store import Q
from services.plans.timers import TimerWorker
from shared.auth import api_key_handlers
from shared.events.booking import PatientRegistered
from shared.runtime import ServiceRuntime, service_app
from shared.topics import BOOKING_EVENTS


def bootstrap(settings: PlansSettings | None = None) -> FastAPI:
    """Build the plans app: HTTP API, consumer of booking events, timer worker."""
    settings = settings or PlansSettings()
    runtime = ServiceRuntime(settings, Path(__file__).with_name("migrations"))
    runtime.audit.owner_query = Q.patient_owners
    on_booking = partial(handlers.on_booking_events, auto_create=settings.auto_create_plans)
    runtime.consume("plans", {
        **api_key_handlers(),
        PatientRegistered: handlers.on_patient_registered,
    }, BOOKING_EVENTS, batch_handlers={event: on_booking for event in handlers.STATUS_OF})

    async def fire_timers(rt: ServiceRuntime) -> None:
        await TimerWorker(rt.db, settings.schema, settings.timer_max_sleep_seconds,
                          listen_pool=rt.session_db).run()

    runtime.add_worker("timers", fire_timers)
    runtime.add_probe(ops.timer_probe(settings.ops_overdue_timer_seconds))
    return service_app(runtime, "Plans service", router)
