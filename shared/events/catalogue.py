"""The event catalogue as Markdown (docs/events.md is generated from it and checked by a test):
`python -m shared.events.catalogue > docs/events.md`."""

from __future__ import annotations

import inspect
import re
from typing import Any, get_args

from shared.events import Event, event_types
from shared.topics import dlq


def _fields(model: type[Event]) -> str:
    parts = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        kind = str(ann) if get_args(ann) else getattr(ann, "__name__", str(ann))
        kind = re.sub(r"\b[a-z_]+(\.[a-z_]+)*\.(?=[A-Z])", "", kind).replace("|", "or")
        parts.append(f"`{name}`" + ("" if info.is_required() else "?") + f" ({kind})")
    return ", ".join(parts)


def render() -> str:
    lines = ["# Event catalogue", "",
             "Generated from `shared/events/` by `python -m shared.events.catalogue`; a test keeps",
             "it current. Every event travels in the envelope described in the README, keyed by",
             "patient (network-level events by clinic). `?` marks optional fields.", ""]
    by_topic: dict[str, list[Any]] = {}
    for name, model in sorted(event_types().items()):
        by_topic.setdefault(model.topic, []).append((name, model))
    for topic in sorted(by_topic):
        lines += [f"## `{topic}` (dead letters: `{dlq(topic)}`)", "",
                  "| event | v | meaning | payload |", "| --- | --- | --- | --- |"]
        for name, model in by_topic[topic]:
            doc = (inspect.getdoc(model) or "").split("\n\n")[0].replace("\n", " ")
            lines.append(f"| `{name}` | {model.schema_version} | {doc} | {_fields(model)} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
