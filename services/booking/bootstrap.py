"""Composition root of the booking service."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.booking.api import router
from services.booking.settings import BookingSettings
from shared.errors import install_error_handlers
from shared.runtime import ServiceRuntime, health_router


def bootstrap(settings: BookingSettings | None = None) -> FastAPI:
    """Build the booking app; connections open when its lifespan starts."""
    settings = settings or BookingSettings()
    runtime = ServiceRuntime(settings, Path(__file__).with_name("migrations"))
    app = FastAPI(title="Booking service", version="0.1.0", lifespan=runtime.lifespan)
    app.state.runtime = runtime
    install_error_handlers(app)
    app.include_router(health_router(runtime))
    app.include_router(router)
    return app
