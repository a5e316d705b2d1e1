"""Ranges of local days asked for by staff screens."""

from __future__ import annotations

from datetime import date, timedelta

from shared.errors import Invalid


def day_range(first: date | None, last: date | None, max_days: int) -> tuple[date, date]:
    """`first` to `last` (default: `first`), both given as `from` and `to`: a 422 naming the
    field when `from` is missing or `to` is not 0 to `max_days` days after it."""
    if first is None:
        raise Invalid("from is required", field="from")
    last = last or first
    if last < first or last - first > timedelta(days=max_days):
        raise Invalid(f"to must be from 0 to {max_days} days after from", field="to")
    return first, last
