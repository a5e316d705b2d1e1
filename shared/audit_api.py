"""`GET /audit` and `GET /audit/export` on every service (a network's admins and its `privacy`
role only), and `GET /ops/audit/verify` (the ops token) behind `kcb-ops audit verify`."""

from __future__ import annotations

import csv
import heapq
import io
import itertools
import json
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, overload
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from shared import audit_chain
from shared.audit import COLUMNS, Entry, Q
from shared.auth import AUDIT, Principal, require
from shared.errors import Invalid
from shared.ops_api import require_ops
from shared.pagination import Limit, decode_cursor, page
from shared.validation import SaneDate, SaneDatetime

LATEST = (datetime(9999, 12, 31, tzinfo=UTC), 2**63 - 1)
FIELDS = ("id", "service", *COLUMNS)
ActorFilter = Annotated[str | None, Query(max_length=200, description=(
    "A person's staff id, or an API key's label"))]
ActionFilter = Annotated[str | None, Query(max_length=100, pattern=r"^[a-z_]+$", description=(
    "The action: the route's name, e.g. get_patient, book_session, sign_in"))]


def view(entry: Entry, service: str) -> dict[str, Any]:
    """An entry as `/audit` shows it."""
    return {"id": entry.id, "service": service, "at": entry.at.isoformat(),
            "clinic_id": entry.clinic_id, "actor_clinic_id": entry.actor_clinic_id,
            "actor_kind": entry.actor_kind, "staff_id": entry.staff_id,
            "actor_label": entry.actor_label, "role": entry.role, "action": entry.action,
            "resource": entry.resource, "patient_ids": entry.patient_ids,
            "outcome": entry.outcome, "status": entry.status, "client": entry.client,
            "correlation_id": entry.correlation_id}


@overload
def _utc(moment: datetime) -> datetime: ...
@overload
def _utc(moment: None) -> None: ...
@overload
def _utc(moment: datetime | None) -> datetime | None: ...
def _utc(moment: datetime | None) -> datetime | None:
    """A moment without an offset is taken as UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def _after(cursor: str | None) -> tuple[datetime, int]:
    at, last = decode_cursor(cursor, (datetime, int)) or LATEST
    if not 0 < last <= LATEST[1]:
        raise Invalid("invalid cursor", field="cursor")
    return at, last


def _actor(actor: str | None) -> tuple[UUID | None, str | None]:
    """A staff id, or else an API key's label."""
    if actor is None:
        return None, None
    try:
        return UUID(actor), None
    except ValueError:
        return None, actor


def audit_router() -> APIRouter:
    router = APIRouter(tags=["audit"])

    def service(request: Request) -> str:
        name: str = request.app.state.runtime.settings.service_name
        return name

    @router.get("/audit")
    async def audit_entries(
            request: Request, who: Principal = require(*AUDIT),
            patient_id: UUID | None = None, actor: ActorFilter = None, action: ActionFilter = None,
            since: Annotated[SaneDatetime | None, Query(alias="from")] = None,
            until: Annotated[SaneDatetime | None, Query(alias="to")] = None,
            limit: Limit = 50, cursor: str | None = None) -> dict[str, Any]:
        """This service's audit entries of the caller's network (and the service's own, e.g.
        the retention purge), newest first; filter by patient, actor (staff id or key label),
        action and time (`from` inclusive, `to` exclusive); page with `cursor`."""
        at, last = _after(cursor)
        staff_id, label = _actor(actor)
        rows = await request.app.state.runtime.db.fetch(
            Q.entries_page, who.clinic_id, patient_id, staff_id, label, action, _utc(since),
            _utc(until), at, last, limit + 1)
        name = service(request)
        result = page([view(Entry.from_row(r), name) for r in rows], limit,
                      lambda e: (datetime.fromisoformat(e["at"]), e["id"]))
        return {"service": name, **result}

    @router.get("/audit/export", response_class=StreamingResponse, responses={200: {
        "description": "The entries, one a line (JSON lines) or a CSV table with a header",
        "content": {"application/x-ndjson": {"schema": {"type": "string"}},
                    "text/csv": {"schema": {"type": "string"}}}}})
    async def export_audit(
            request: Request, since: Annotated[SaneDatetime, Query(alias="from")],
            until: Annotated[SaneDatetime, Query(alias="to")],
            format: Literal["csv", "jsonl"] = "jsonl",
            who: Principal = require(*AUDIT)) -> StreamingResponse:
        """The network's entries of a period, oldest first, as CSV or JSON lines (the export
        is itself an entry of the trail)."""
        since, until = _utc(since), _utc(until)
        if until <= since:
            raise Invalid("must be after from", field="to")
        rt, name = request.app.state.runtime, service(request)
        request.state.audit_no_body = True  # the entry names the period, not every patient

        async def lines() -> AsyncIterator[str]:
            if format == "csv":
                yield _csv_line(FIELDS)
            async with rt.db.acquire() as conn, conn.transaction():
                async for row in conn.cursor(Q.entries_of_period, who.clinic_id, since, until):
                    entry = view(Entry.from_row(row), name)
                    yield _csv_line([_plain(entry[f]) for f in FIELDS]) if format == "csv" \
                        else json.dumps(entry, default=str) + "\n"

        media = "text/csv" if format == "csv" else "application/x-ndjson"
        filename = f"audit-{name}-{since.date()}-{until.date()}.{format}"
        return StreamingResponse(lines(), media_type=media, headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store"})

    @router.get("/ops/audit/verify", tags=["ops"], dependencies=[Depends(require_ops)])
    async def verify_audit(request: Request, since: SaneDate | None = None) -> dict[str, Any]:
        """Walk this service's hash chains (from `since`): the first broken link, if any."""
        rt = request.app.state.runtime
        await rt.audit.flush(rt.db)
        await audit_chain.seal(rt.db)
        return {"service": service(request), **await audit_chain.verify(rt.db, since)}

    return router


def merge_trails(pages: list[list[dict[str, Any]]], limit: int) -> list[dict[str, Any]]:
    """Several services' `/audit` items (each newest first) as one list in time order,
    newest first, at most `limit` (the console's cross-service view)."""
    merged = heapq.merge(*pages, key=lambda e: (e["at"], e["service"], e["id"]), reverse=True)
    return list(itertools.islice(merged, limit))


def _plain(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def _csv_line(values: Iterable[Any]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(values)
    return out.getvalue()

