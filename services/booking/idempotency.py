"""`Idempotency-Key` on every POST: the first response to a key is stored in the same
transaction as the request's effect, and a replay returns it without doing anything again.
A concurrent request with the same key waits for the first to finish."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import Response

from services.booking import rules, store
from shared.audit import record

Handler = Callable[..., Awaitable[Any]]
"""`handler(conn)`, or with `one_write` `handler(conn, audit)`."""


def _encode(value: Any) -> Any:
    """A value the C encoder does not know: a UUID (asyncpg's own type among them) as its
    string, what FastAPI's encoder gives without its chain of type checks; anything else as
    FastAPI encodes it."""
    return str(value) if isinstance(value, UUID) else jsonable_encoder(value)


def _json(body: Any) -> str:
    """`body` as JSON, as FastAPI would encode it: the C encoder does the work, `_encode`
    only the values it does not know (UUIDs, datetimes: a fraction of the cost)."""
    return json.dumps(body, default=_encode, ensure_ascii=False, allow_nan=False,
                      separators=(",", ":"))


def _response(content: str, status_code: int, headers: dict[str, str] | None = None) -> Response:
    return Response(content, status_code=status_code, headers=headers,
                    media_type="application/json")


async def idempotent(request: Request, clinic_id: UUID, handler: Handler, status_code: int = 201,
                     *, one_write: bool = False) -> Response:
    """Run `handler(conn)` in a transaction, honouring the request's Idempotency-Key, and
    record the change in the audit trail in that transaction. `one_write`: the handler changes
    the database with a single statement (atomic by itself) that also writes the audit entry
    it is given (`handler(conn, entry.inline())`), so a request without a key runs without a
    transaction (round trips fewer)."""
    key = request.headers.get("Idempotency-Key")
    pool = request.app.state.runtime.db
    if key is None and one_write:
        trail = request.app.state.runtime.audit
        audit = trail.entry(request.scope, status_code).inline() if trail.enabled else None
        async with pool.acquire() as conn:
            body = _json(await handler(conn, audit))
        if audit is not None:
            request.state.audited = status_code
        return _response(body, status_code)
    async with pool.acquire() as conn, conn.transaction():
        if key is None:
            body = _json(await handler(conn))
            await record(conn, request, body=body, status=status_code)
            return _response(body, status_code)
        rules.check_key(key)
        digest = rules.request_digest(request.method, request.url.path, await request.body())
        if not await store.claim_idempotency_key(conn, clinic_id, key, digest):
            stored = rules.replay(await store.idempotent_response(conn, clinic_id, key), digest)
            await record(conn, request, body=stored.response, status=stored.status_code)
            return _response(stored.response, stored.status_code, {"Idempotent-Replayed": "true"})
        body = _json(await handler(conn))
        await store.keep_idempotent_response(conn, clinic_id, key, status_code, body)
        await record(conn, request, body=body, status=status_code)
        return _response(body, status_code)
