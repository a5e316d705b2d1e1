"""A database that cannot be reached is answered 503 with Retry-After, never 500, and the
answer names no detail of the failure."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from shared.db import DatabaseUnavailable
from shared.errors import install_error_handlers

FAILURES = [
    asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
    asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.exceptions.SerializationError("could not serialize access"),
    asyncpg.InterfaceError("pool is closing"),
    ConnectionRefusedError(111, "Connect call failed ('10.0.0.7', 5432)"),
    DatabaseUnavailable("AdminShutdownError"),
]


def _app(failure: Exception) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/thing")
    async def thing() -> dict:
        raise failure

    return app


@pytest.mark.parametrize("failure", FAILURES, ids=lambda f: type(f).__name__)
async def test_a_request_that_cannot_reach_the_database_is_answered_503_with_retry_after(failure):
    transport = httpx.ASGITransport(app=_app(failure))
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
        answer = await http.get("/thing")
    assert (answer.status_code, answer.headers["Retry-After"]) == (503, "5")
    assert answer.json() == {"error": "unavailable",
                             "message": "the service's database cannot take the request just now; "
                                        "try again shortly"}


async def test_a_bug_is_still_not_taken_for_an_outage():
    transport = httpx.ASGITransport(app=_app(KeyError("patient_id")), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
        answer = await http.get("/thing")
    assert answer.status_code == 500
    assert "Retry-After" not in answer.headers
