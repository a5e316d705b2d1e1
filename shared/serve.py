"""Run a service's app under uvicorn with the shared logging set-up."""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any, TypeVar

import uvicorn
from fastapi import FastAPI

from shared.logs import configure_logging
from shared.settings import ServiceSettings
from shared.tracing import configure_from_env

_BOOTSTRAP_ENV = "SERVE_BOOTSTRAP"
S = TypeVar("S", bound=ServiceSettings)


def serve(bootstrap: Callable[[S], FastAPI], settings: S) -> None:
    """Serve the app; with `http_workers` > 1, as that many processes (each builds its own
    app from the environment: one outbox relay leads, consumers share the group)."""
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
    configure_from_env(settings.service_name)  # tracing, if OTEL_SDK_DISABLED=false
    options: dict[str, Any] = dict(host=settings.http_host, port=settings.http_port,
                                   log_config=None, access_log=False, timeout_graceful_shutdown=5)
    if settings.http_workers > 1:
        os.environ[_BOOTSTRAP_ENV] = f"{bootstrap.__module__}:{bootstrap.__name__}"
        # the workers' counters add up in /metrics (prometheus_client's multiprocess mode)
        metrics_dir = tempfile.mkdtemp(prefix=f"kcb-{settings.service_name}-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        try:
            uvicorn.run("shared.serve:worker_app", factory=True, workers=settings.http_workers,
                        **options)
        finally:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    else:
        uvicorn.run(bootstrap(settings), **options)


def worker_app() -> FastAPI:
    """The app of one worker process (settings from the environment, like the parent's)."""
    module, _, name = os.environ[_BOOTSTRAP_ENV].partition(":")
    configure_from_env(module.split(".")[1] if module.startswith("services.") else module)
    app: FastAPI = getattr(importlib.import_module(module), name)()
    settings = app.state.runtime.settings
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
    return app
