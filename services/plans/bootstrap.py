"""Composition root of the plans service."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from fastapi import FastAPI

from services.plans import handlers
from services.plans.api import router
from services.plans.settings import PlansSettings
from shared.events.booking import SessionBooked
from shared.runtime import ServiceRuntime, service_app
from shared.topics import BOOKING_EVENTS


def bootstrap(settings: PlansSettings | None = None) -> FastAPI:
    """Build the plans app: its HTTP API and its consumer of booking events."""
    settings = settings or PlansSettings()
    runtime = ServiceRuntime(settings, Path(__file__).with_name("migrations"))
    runtime.consume("plans", {
        SessionBooked: partial(handlers.on_session_booked, auto_create=settings.auto_create_plans),
    }, BOOKING_EVENTS)
    return service_app(runtime, "Plans service", router)
