"""What every value must be before any service acts on it ("checked at the door").

- Strings hold no control characters (C0, DEL, C1) and no lone surrogates: PostgreSQL
  refuses NUL, and the others have no business in a name or a reason. Tab, newline and
  carriage return are refused too, except in the fields a model lists in `MULTILINE`
  (addresses and free-text reasons).
- Dates and times lie between 1900-01-01 and 2100-12-31.

Request bodies get both from `RequestModel`; path and query strings and the headers the
services read get the first from `refuse_control_characters`, an app-wide dependency; date
and time query parameters use `SaneDate` and `SaneDatetime`. Refusals are 422s that name the
field and never repeat the value."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, ClassVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BaseModel, ValidationInfo, field_validator

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_OR_BREAK = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
EARLIEST, LATEST = date(1900, 1, 1), date(2100, 12, 31)
MAX_BIGINT = 2**63 - 1
READ_HEADERS = ("idempotency-key",)
"""Headers whose values the services store or look up (others are only hashed or compared)."""


def control_character_in(value: str, multiline: bool = False) -> bool:
    """Whether `value` holds a character refused at the door (tab and line breaks are
    allowed only when `multiline`)."""
    return (_CONTROL if multiline else _CONTROL_OR_BREAK).search(value) is not None


def _problem(value: Any, multiline: bool) -> str | None:
    """What is wrong with `value` (strings and dates, inside lists and dicts too), or None."""
    if isinstance(value, str):
        return "must not contain control characters" + ("" if multiline else
                                                         " (tabs or line breaks)") \
            if control_character_in(value, multiline) else None
    if isinstance(value, date):
        day = value.date() if isinstance(value, datetime) else value
        return None if EARLIEST <= day <= LATEST else \
            f"must be between {EARLIEST} and {LATEST}"
    items = value.items() if isinstance(value, dict) else \
        value if isinstance(value, list | tuple | set | frozenset) else ()
    for item in items:
        for part in item if isinstance(value, dict) else (item,):
            if (problem := _problem(part, multiline)) is not None:
                return problem
    return None


class RequestModel(BaseModel):
    """Base of every request body: refuses control characters in strings and dates outside
    1900..2100, in every field (nested models check their own)."""

    MULTILINE: ClassVar[frozenset[str]] = frozenset()
    """Fields that may hold tabs and line breaks (an address, a free-text reason)."""

    @field_validator("*", mode="after")
    @classmethod
    def _checked_at_the_door(cls, value: Any, info: ValidationInfo) -> Any:
        problem = _problem(value, info.field_name in cls.MULTILINE)
        if problem is not None:
            raise ValueError(problem)
        return value


def _sane(value: date) -> date:
    if (problem := _problem(value, False)) is not None:
        raise ValueError(problem)
    return value


SaneDate = Annotated[date, AfterValidator(_sane)]
SaneDatetime = Annotated[datetime, AfterValidator(_sane)]


async def refuse_control_characters(request: Request) -> None:
    """App-wide dependency: path and query values and the headers in `READ_HEADERS` hold no
    control characters (a 422 naming each one)."""
    seen = [("path", k, v) for k, v in request.path_params.items()]
    seen += [("query", k, v) for k, v in request.query_params.multi_items()]
    seen += [("header", h, request.headers[h]) for h in READ_HEADERS if h in request.headers]
    errors = [{"type": "control_character", "loc": (where, name),
               "msg": "must not contain control characters (tabs or line breaks)"}
              for where, name, value in seen
              if isinstance(value, str) and (control_character_in(value) or
                                             control_character_in(name))]
    if errors:
        raise RequestValidationError(errors)
