"""Composition root of the booking service."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.booking import inbound
from services.booking.api import router
from services.booking.online_api import router as online_router
from services.booking.settings import BookingSettings
from services.booking.staff_api import router as staff_router
from services.booking.store import Q
from services.booking.views import router as views_router
from shared.runtime import ServiceRuntime, service_app
from shared.topics import NOTIFIER_EVENTS


def bootstrap(settings: BookingSettings | None = None) -> FastAPI:
    """Build the booking app: its HTTP API and its consumer of the notifier's events."""
    settings = settings or BookingSettings()
    runtime = ServiceRuntime(settings, Path(__file__).with_name("migrations"))
    runtime.audit.owner_query = Q.patient_owners
    runtime.consume("booking", inbound.HANDLERS, NOTIFIER_EVENTS)
    return service_app(runtime, "Booking service", views_router, router, staff_router,
                       online_router)
