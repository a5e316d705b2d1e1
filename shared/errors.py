"""Domain errors every service raises, and their HTTP mapping."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from shared.db import TRANSIENT, DatabaseUnavailable

log = logging.getLogger(__name__)

UNAVAILABLE: tuple[type[Exception], ...] = (
    DatabaseUnavailable, ConnectionError,
    *(e for e in TRANSIENT if e not in (OSError, TimeoutError)))
"""What a request can meet when the database is restarting, failing over or refusing
connections, or its transaction conflicts with another's: answered 503 with Retry-After (try
again shortly), not 500."""
RETRY_AFTER_SECONDS = 5


class DomainError(Exception):
    """Base: a request that cannot be carried out as asked. Nothing was written."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class Invalid(DomainError):
    status_code = 422
    code = "invalid"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"


def install_error_handlers(app: FastAPI) -> None:
    """Domain errors as JSON; validation errors as 422 with field paths and no echo of the
    submitted values (they may be patient data); a database that cannot be reached as 503
    with Retry-After."""

    @app.exception_handler(DomainError)
    async def _domain_error(_: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse(jsonable_encoder({"error": exc.code, "message": exc.message,
                                              **exc.details}), status_code=exc.status_code)

    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("%s %s: database unavailable (%s), answered 503", request.method,
                    request.url.path, type(exc).__name__)
        return JSONResponse({"error": "unavailable",
                             "message": "the service's database cannot take the request just now; "
                                        "try again shortly"},
                            status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    for kind in UNAVAILABLE:
        app.add_exception_handler(kind, _unavailable)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [{"path": ".".join(_loc_part(p) for p in e["loc"]), "message": e["msg"],
                   "type": e["type"]} for e in exc.errors()]
        return JSONResponse({"error": "invalid", "message": "the request is not valid",
                             "fields": fields}, status_code=422)


_NAME = re.compile(r"^[\w\[\]-]{1,64}$", re.ASCII)


def _loc_part(part: int | str) -> str:
    """A part of an error's field path; a part that is no name (a dict key or unknown field
    someone sent: data, not a field) shows as `*`."""
    return str(part) if isinstance(part, int) or _NAME.match(str(part)) else "*"
