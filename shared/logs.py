"""Logging set-up shared by the services: one line per record, no patient data at INFO."""

from __future__ import annotations

import logging
import sys


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(
        f"%(asctime)s {service:<8} %(levelname)-5s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # third-party request logs at INFO could carry numbers or bodies: warnings only
    for noisy in ("aiokafka", "uvicorn.access", "httpx", "httpcore", "twilio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
