"""The ops endpoints every service serves: `/metrics` for Prometheus, and under `/ops` (with
the `X-Ops-Token` header) its status, its dead letters, its outbox, the overview of all
services and the dashboard page. No patient data ever leaves through here."""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Security
from fastapi import Path as PathParam
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader
from pydantic import Field

from shared import dead_letters, metrics, ops_history, ops_status
from shared.asyncapi import document as asyncapi_document
from shared.audit import ANONYMOUS, OPS, act_as, record
from shared.dead_letters import Q
from shared.ops_overview import gather_histories, gather_overview, parse_peers
from shared.validation import MAX_BIGINT, RequestModel

_ops_token = APIKeyHeader(name="X-Ops-Token", auto_error=False, description="Ops token (OPS_TOKEN)")
DASHBOARD = Path(__file__).with_name("dashboard.html")
VENDOR = Path(__file__).with_name("vendor")
VENDORED = {"uPlot-1.6.32.iife.min.js": "text/javascript", "uPlot-1.6.32.min.css": "text/css"}
"""The dashboard's vendored files (vendor/VENDORED.md), the only ones `/ops/vendor/` serves."""


async def require_ops(request: Request, token: str | None = Security(_ops_token)) -> None:
    """Admit requests carrying the configured ops token."""
    act_as(request, ANONYMOUS)
    expected = request.app.state.runtime.settings.ops_token
    if not expected:
        raise HTTPException(403, "the ops endpoints are disabled (no OPS_TOKEN configured)")
    if not token or not hmac.compare_digest(token.encode(), expected.encode()):
        raise HTTPException(401, "a valid X-Ops-Token header is required")
    act_as(request, OPS)


class Action(RequestModel):
    actor: str = Field(min_length=1, max_length=200, description="Who does it (recorded).")


class Discard(Action):
    MULTILINE = frozenset({"reason"})
    reason: str = Field(min_length=1, max_length=1000, description="Why it is given up.")


class ReplayAll(Action):
    consumer: str | None = Field(None, max_length=200, description="Only this consumer's letters.")
    batch_size: int | None = Field(None, ge=1, le=1000, description=(
        "Letters replayed per transaction (default: the service's DLQ_REPLAY_BATCH_SIZE)."))


JOB_ID = PathParam(ge=1, le=2**63 - 1, description="A replay job's id.")
LETTER_ID = PathParam(ge=1, le=MAX_BIGINT, description="A dead letter's id.")


def ops_routers() -> tuple[APIRouter, APIRouter]:
    """The ops routes: the open ones (metrics, the dashboard's files), then those behind the
    ops token (`/ops/...`). Two routers side by side, not one inside the other, so that the
    app can hold their routes in one flat list (`shared.runtime.include_flat`)."""
    router = APIRouter(tags=["ops"])
    guarded = APIRouter(prefix="/ops", tags=["ops"], dependencies=[Depends(require_ops)])

    def runtime(request: Request) -> Any:  # the service's `Runtime`
        return request.app.state.runtime

    @router.get("/metrics", include_in_schema=False)
    async def prometheus(request: Request) -> Response:
        report = await ops_status.collect(runtime(request))
        return Response(metrics.render(report.gauges), media_type="text/plain; version=0.0.4")

    @router.get("/asyncapi.json", include_in_schema=False)
    async def asyncapi(request: Request) -> dict[str, Any]:
        """The AsyncAPI document of this service's topics and events."""
        rt = runtime(request)
        return asyncapi_document(rt.broker, rt.settings.service_name, request.app.version)

    @router.get("/ops/dashboard", response_class=HTMLResponse, include_in_schema=False)
    async def dashboard() -> HTMLResponse:
        return HTMLResponse(DASHBOARD.read_text())

    @router.get("/ops/vendor/{name}", include_in_schema=False)
    async def vendored(name: str) -> Response:
        if name not in VENDORED:
            raise HTTPException(404, "no such file")
        return Response((VENDOR / name).read_bytes(), media_type=VENDORED[name],
                        headers={"Cache-Control": "public, max-age=31536000, immutable"})

    @guarded.get("/status")
    async def status(request: Request) -> dict[str, Any]:
        """This service's readiness, outbox, dead letters, lag and own figures, with problems."""
        return (await ops_status.collect(runtime(request))).as_dict()

    @guarded.get("/overview")
    async def overview(request: Request) -> dict[str, Any]:
        """Every service's status (from `OPS_PEERS`), as the dashboard shows it."""
        s = runtime(request).settings
        return await gather_overview(parse_peers(s.ops_peers), s.ops_token)

    @guarded.get("/history")
    async def history(
        request: Request, minutes: int = Query(ops_history.CHART_MINUTES, ge=1, le=120)
    ) -> dict[str, Any]:
        """This service's figures over the last `minutes` (lag, outbox, dead letters; the
        notifier's texts per minute), ending with a point for now, as the dashboard charts them."""
        return await ops_history.history(runtime(request), minutes)

    @guarded.get("/overview/history")
    async def overview_history(request: Request) -> dict[str, Any]:
        """Every service's `/ops/history` (from `OPS_PEERS`), as the dashboard charts them."""
        s = runtime(request).settings
        return await gather_histories(parse_peers(s.ops_peers), s.ops_token)

    @guarded.get("/outbox")
    async def outbox(request: Request) -> dict[str, Any]:
        """Unpublished outbox rows by topic, with the last publishing error."""
        async with runtime(request).db.acquire() as conn:
            return {"service": runtime(request).settings.service_name,
                    "topics": [dict(r) for r in await conn.fetch(Q.outbox_by_topic)]}

    @guarded.get("/dlq")
    async def list_dlq(request: Request,
                       status: Literal["pending", "replayed", "discarded", "all"] = "pending",
                       after: int = Query(0, ge=0, le=MAX_BIGINT),
                       limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
        """Dead letters (pending by default) in id order; page with `after` = the last id."""
        async with runtime(request).db.acquire() as conn:
            items = await dead_letters.list_letters(
                conn, status=None if status == "all" else status, after=after, limit=limit)
        return {"service": runtime(request).settings.service_name, "items": items,
                "next_after": items[-1]["id"] if len(items) == limit else None}

    @guarded.post("/dlq/replay", status_code=202)
    async def replay_all(request: Request, body: ReplayAll) -> JSONResponse:
        """Start replaying every letter pending now (of one consumer, if given), in batches,
        as a job: answered at once with the job to follow (`GET /ops/dlq/replay/{job_id}`).
        Letters its own replays create are not replayed by it. One job at a time (409)."""
        rt = runtime(request)
        if body.consumer is not None and body.consumer not in {c.name for c in rt.consumers}:
            raise RequestValidationError([{"loc": ("body", "consumer"), "type": "value_error",
                                           "msg": "not a consumer of this service"}])
        async with rt.db.acquire() as conn, conn.transaction():
            job = await dead_letters.start_replay_job(
                conn, actor=body.actor, consumer=body.consumer,
                batch_size=body.batch_size or rt.settings.dlq_replay_batch_size)
            await record(conn, request, status=202)
        rt.replay_jobs_wake.set()
        return JSONResponse(
            jsonable_encoder({"service": rt.settings.service_name, **job}),
            status_code=202,
            headers={"Location": f"/ops/dlq/replay/{job['id']}"},
        )

    @guarded.get("/dlq/replay")
    async def replay_jobs(request: Request, limit: int = Query(20, ge=1, le=100)) -> dict[str, Any]:
        """The latest replay jobs, newest first, with their progress."""
        async with runtime(request).db.acquire() as conn:
            jobs = await dead_letters.list_replay_jobs(conn, limit)
        return {"service": runtime(request).settings.service_name, "items": jobs}

    @guarded.get("/dlq/replay/{job_id}")
    async def replay_job(request: Request, job_id: int = JOB_ID) -> dict[str, Any]:
        """A replay job: running or done, letters replayed, skipped (resolved meanwhile) and
        remaining out of the total snapshot when it started."""
        async with runtime(request).db.acquire() as conn:
            job = await dead_letters.get_replay_job(conn, job_id)
        return {"service": runtime(request).settings.service_name, **job}

    @guarded.get("/dlq/{letter_id}")
    async def show_dlq(request: Request, letter_id: int = LETTER_ID) -> dict[str, Any]:
        """One dead letter with its event (patient data redacted) and the actions taken."""
        async with runtime(request).db.acquire() as conn:
            return await dead_letters.show_letter(conn, letter_id)

    @guarded.post("/dlq/{letter_id}/replay")
    async def replay(request: Request, body: Action, letter_id: int = LETTER_ID) -> dict[str, Any]:
        """Put the letter's message back on its source topic (once the cause is fixed)."""
        rt = runtime(request)
        async with rt.db.acquire() as conn, conn.transaction():
            await dead_letters.replay_letter(conn, letter_id, actor=body.actor,
                                             topic_prefix=rt.settings.topic_prefix)
            await record(conn, request)
        rt.relay.wake()
        return {"id": letter_id, "status": "replayed"}

    @guarded.post("/dlq/{letter_id}/discard")
    async def discard(
        request: Request, body: Discard, letter_id: int = LETTER_ID
    ) -> dict[str, Any]:
        """Give up on the letter, with the reason."""
        async with runtime(request).db.acquire() as conn, conn.transaction():
            await dead_letters.discard_letter(conn, letter_id, actor=body.actor, reason=body.reason)
            await record(conn, request)
        return {"id": letter_id, "status": "discarded"}

    return router, guarded

