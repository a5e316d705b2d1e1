"""Run a service's app under uvicorn with the shared logging set-up."""

from __future__ import annotations

from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from shared.logs import configure_logging
from shared.settings import ServiceSettings


def serve(bootstrap: Callable[[ServiceSettings], FastAPI], settings: ServiceSettings) -> None:
    configure_logging(settings.service_name, settings.log_level)
    app = bootstrap(settings)
    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_config=None,
                access_log=False, timeout_graceful_shutdown=5)
