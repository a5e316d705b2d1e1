"""Composition root of the booking service."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.booking.api import router
from services.booking.settings import BookingSettings
from shared.runtime import ServiceRuntime, service_app


def bootstrap(settings: BookingSettings | None = None) -> FastAPI:
    """Build the booking app; connections open when its lifespan starts."""
    settings = settings or BookingSettings()
    runtime = ServiceRuntime(settings, Path(__file__).with_name("migrations"))
    return service_app(runtime, "Booking service", router)
