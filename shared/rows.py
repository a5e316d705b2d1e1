"""Rows as frozen dataclasses: what a service's store gives the rest of it, never asyncpg
Records. A dataclass is made from a record's columns of the same names (others are left
out), so one query may feed several shapes."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeAlias, TypeVar

import asyncpg

from shared.db import Connection

T = TypeVar("T")
Db: TypeAlias = Connection | asyncpg.Pool

_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def field_names(cls: type) -> tuple[str, ...]:
    """A dataclass's field names, in order."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


def as_dict(value: Any) -> dict[str, Any]:
    """A row's fields by name, in column order: what the API answers for it."""
    return {name: getattr(value, name) for name in field_names(type(value))}


def row(cls: type[T], record: asyncpg.Record) -> T:
    """A dataclass from a record's columns of the same names (others are left out)."""
    return cls(*[record[name] for name in field_names(cls)])


async def one(db: Db, cls: type[T], sql: str, *args: Any) -> T | None:
    """The row of `sql`, or None."""
    record = await db.fetchrow(sql, *args)
    return None if record is None else row(cls, record)


async def made(db: Db, cls: type[T], sql: str, *args: Any) -> T:
    """The row of a statement that always returns one (INSERT ... RETURNING, an aggregate)."""
    record = await db.fetchrow(sql, *args)
    assert record is not None
    return row(cls, record)


async def every(db: Db, cls: type[T], sql: str, *args: Any) -> list[T]:
    """The rows of `sql`."""
    return [row(cls, r) for r in await db.fetch(sql, *args)]
