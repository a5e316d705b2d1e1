"""Composition root of the plans service."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from fastapi import FastAPI

from services.plans import handlers
from services.plans.api import router
from services.plans.settings import PlansSettings
from shared.errors import install_error_handlers
from shared.events.booking import SessionBooked
from shared.runtime import ServiceRuntime, health_router
from shared.topics import BOOKING_EVENTS


def bootstrap(settings: PlansSettings | None = None) -> FastAPI:
    """Build the plans app: its HTTP API and its consumer of booking events."""
    settings = settings or PlansSettings()
    runtime = ServiceRuntime(settings, Path(__file__).with_name("migrations"))
    runtime.consume("plans", {
        SessionBooked: partial(handlers.on_session_booked, auto_create=settings.auto_create_plans),
    }, BOOKING_EVENTS)
    app = FastAPI(title="Plans service", version="0.1.0", lifespan=runtime.lifespan)
    app.state.runtime = runtime
    install_error_handlers(app)
    app.include_router(health_router(runtime))
    app.include_router(router)
    return app
