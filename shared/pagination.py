"""Cursor (keyset) pagination for list endpoints: an opaque cursor holds the sort key of the
last row returned, so pages stay stable while rows are added."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import Query

from shared.errors import Invalid
from shared.validation import EARLIEST, LATEST

MAX_LIMIT = 200
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Rows per page")]


def encode_cursor(values: tuple[Any, ...]) -> str:
    def plain(v: Any) -> Any:
        return v.isoformat() if isinstance(v, datetime) else str(v) if isinstance(v, UUID) else v

    raw = json.dumps([plain(v) for v in values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, types: tuple[type, ...]) -> tuple[Any, ...] | None:
    """The sort key in `cursor`, converted to `types`; `Invalid` if it was tampered with."""
    if not cursor:
        return None
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(raw, list) or len(raw) != len(types):
            raise ValueError
        return tuple(_moment(v) if t is datetime else t(v) for v, t in zip(raw, types, strict=True))
    except (ValueError, TypeError, json.JSONDecodeError):
        raise Invalid("invalid cursor", field="cursor") from None


def _moment(value: str) -> datetime:
    """A cursor's time: with its offset (cursors are made so), between 1900 and 2100."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None or not EARLIEST <= moment.date() <= LATEST:
        raise ValueError
    return moment


def page(rows: list[Any], limit: int, key: Callable[[Any], tuple[Any, ...]]) -> dict[str, Any]:
    """A page from `rows` fetched with LIMIT `limit + 1`; `key(row)` gives the sort key."""
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": rows, "next_cursor": encode_cursor(key(rows[-1])) if more and rows else None}
