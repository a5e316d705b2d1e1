"""Composition root of the staff console: server-rendered pages (Jinja2, htmx), its own
schema for sessions only, the three services' HTTP APIs for everything else, and live
updates from the booking and notifier topics."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from services.console import audit, auth_pages, book, day, inbox, network, patients, web, week
from services.console.live import Hub
from services.console.services import Services
from services.console.settings import ConsoleSettings
from shared.kafka_security import client_options
from shared.runtime import ServiceRuntime, service_app

HERE = Path(__file__).parent


def bootstrap(settings: ConsoleSettings | None = None,
              transports: dict[str, httpx.AsyncBaseTransport] | None = None) -> FastAPI:
    """Build the console app (`transports`: how to reach the services, for tests)."""
    settings = settings or ConsoleSettings()
    runtime = ServiceRuntime(settings, HERE / "migrations", audited=False)
    services = Services(settings, transports)

    async def close_clients(_: ServiceRuntime) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await services.close()

    hub = Hub()

    async def live_updates(_: ServiceRuntime) -> None:
        await hub.run(settings.kafka_bootstrap_servers, settings.topic_prefix,
                      client_options(settings))

    runtime.add_worker("service-clients", close_clients)
    runtime.add_worker("live-updates", live_updates)
    app = service_app(runtime, "Clinic console", auth_pages.router, day.router, week.router,
                      patients.router, inbox.router, network.router, audit.router,
                      book.router)
    app.state.services = services
    app.state.hub = hub
    app.add_middleware(web.SecurityHeaders)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    web.install(app)

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/day", status_code=303)

    return app
