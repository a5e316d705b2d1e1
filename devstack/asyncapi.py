"""Export each service's AsyncAPI document (`shared.asyncapi`) to `docs/asyncapi/`:
`python -m devstack.asyncapi [directory]` (tests/test_contracts.py keeps them current)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from services.booking.bootstrap import bootstrap as booking
from services.booking.settings import BookingSettings
from services.notifier.bootstrap import bootstrap as notifier
from services.notifier.settings import NotifierSettings
from services.plans.bootstrap import bootstrap as plans
from services.plans.settings import PlansSettings
from shared.asyncapi import document

DOCS = Path(__file__).resolve().parent.parent / "docs" / "asyncapi"


def export(directory: Path = DOCS) -> list[Path]:
    """Write each service's document to `directory/<service>.json`."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, bootstrap, settings in (("booking", booking, BookingSettings),
                                      ("plans", plans, PlansSettings),
                                      ("notifier", notifier, NotifierSettings)):
        # the broker address as docker-compose has it, whatever this machine's environment says
        app = bootstrap(settings(kafka_bootstrap_servers="kafka:9092", topic_prefix=""))
        doc = document(app.state.runtime.broker, name, app.version)
        path = directory / f"{name}.json"
        path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":
    for p in export(Path(sys.argv[1]) if len(sys.argv) > 1 else DOCS):
        print(p)
