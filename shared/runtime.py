"""What every service runs besides its own logic: the database pool and migrations, the
topics, the outbox relay, the FastStream broker and background workers (its own, and the
shared ones: "replay all" jobs of dead letters, retention), the health and ops endpoints. A
service's `bootstrap` builds one `ServiceRuntime` and hands it its parts."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from faststream.kafka import KafkaBroker

from shared import audit_chain, dead_letters, tracing
from shared.asyncapi import declare_publishers
from shared.audit import AuditTrail
from shared.consumer import BatchHandler, EventConsumer, Handler
from shared.db import SHARED_MIGRATIONS, apply_migrations, create_pool, discover_migrations
from shared.db import Q as DB
from shared.events import Event
from shared.kafka import ensure_service_topics, make_broker, make_producer
from shared.kafka_security import client_options
from shared.ops_history import record_samples
from shared.ops_status import LagReader, Probe
from shared.outbox import OutboxRelay
from shared.retention import Purge, run_retention, shared_purges
from shared.settings import ServiceSettings
from shared.zones import ZoneRulesProbe, held_zones

log = logging.getLogger(__name__)

DIRECT_POOL_SIZE = 4
"""Direct sessions a service holds at most: the outbox relay's lock, one listening worker,
the migrations at start, one spare."""

GC_YOUNG = 10_000
"""Allocations (less deallocations) between collections of the youngest generation, once a
service has started (Python's default: 700)."""

Worker = Callable[["ServiceRuntime"], Coroutine[Any, Any, None]]


class ServiceRuntime:
    """Owns a service's connections and background tasks; opened by the app's lifespan."""

    def __init__(self, settings: ServiceSettings, migrations_dir: Path, *, audited: bool = True):
        self.settings = settings
        self.audit = AuditTrail(proxies=settings.trusted_proxies, enabled=audited)
        """The service's audit trail (`shared.audit`); off for the console, which holds no
        patient data (the services audit its calls, made with the person's token)."""
        self.migrations = discover_migrations(SHARED_MIGRATIONS, migrations_dir)
        self.broker: KafkaBroker = make_broker(settings)
        self.workers: list[tuple[str, Worker]] = []
        self.consumers: list[EventConsumer] = []
        self.zone_rules = ZoneRulesProbe()
        self.probes: list[Probe] = [self.zone_rules]
        self.purges: list[Purge] = shared_purges(settings)
        self.lag_reader = LagReader(settings.kafka_bootstrap_servers, client_options(settings))
        declare_publishers(self.broker, settings.service_name, [], settings.topic_prefix)
        self.pool: asyncpg.Pool | None = None
        self.direct: asyncpg.Pool | None = None
        """Sessions of their own (`database_direct_url`): LISTEN, leader locks, migrations;
        the same pool as `pool` when no direct URL is set."""
        self.relay: OutboxRelay | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.replay_jobs_wake = asyncio.Event()
        """Set when a "replay all" job starts here (other instances find it within seconds)."""
        self._producer: Any = None
        """The AIOKafkaProducer the outbox relay publishes with, once started."""

    def add_worker(self, name: str, worker: Worker) -> None:
        """Run `worker(runtime)` as a background task while the service runs."""
        self.workers.append((name, worker))

    def add_probe(self, probe: Probe) -> None:
        """Add the service's own figures to its ops status and metrics."""
        self.probes.append(probe)

    def add_purge(self, purge: Purge) -> None:
        """Purge one of the service's own tables with the others (`shared.retention`)."""
        self.purges.append(purge)

    def consume(self, name: str, handlers: dict[type[Event], Handler], *topics: str,
                batch_handlers: dict[type[Event], BatchHandler] | None = None) -> EventConsumer:
        """Subscribe an idempotent consumer group `name` to `topics` with `handlers` (and
        `batch_handlers`, which take all of a batch's events of their types at once)."""
        consumer = EventConsumer(name, lambda: self.db, handlers,
                                 topic_prefix=self.settings.topic_prefix,
                                 batch_handlers=batch_handlers or {})
        s = self.settings
        consumer.subscribe(self.broker, *topics, max_records=s.consumer_max_records,
                           session_timeout_ms=s.kafka_session_timeout_ms,
                           heartbeat_interval_ms=s.kafka_heartbeat_interval_ms)
        self.consumers.append(consumer)
        declare_publishers(self.broker, s.service_name, list(topics), s.topic_prefix, own=False)
        return consumer

    @property
    def db(self) -> asyncpg.Pool:
        assert self.pool is not None, "runtime not started"
        return self.pool

    @property
    def session_db(self) -> asyncpg.Pool:
        """The pool of direct sessions, for LISTEN and session advisory locks (`direct`)."""
        assert self.direct is not None, "runtime not started"
        return self.direct

    async def _open_database(self) -> asyncpg.Pool:
        """The pools, checked (search path, time zone rules) and migrated."""
        s = self.settings
        pool = await create_pool(s.database_url, s.schema, max_size=s.db_pool_size,
                                 min_size=min(s.db_pool_min_size, s.db_pool_size),
                                 statement_cache_size=s.db_statement_cache_size,
                                 direct_url=s.direct_database_url)
        self.pool = pool
        self.direct = pool if s.direct_database_url == s.database_url else \
            await create_pool(s.direct_database_url, s.schema, max_size=DIRECT_POOL_SIZE)
        await check_search_path(pool, s.schema)
        applied = await apply_migrations(self.direct, self.migrations)
        if applied:
            log.info("%s: applied migrations %s", s.service_name, ", ".join(applied))
        async with pool.acquire() as conn:
            await self.zone_rules.check(conn)
        return pool

    async def start(self) -> None:
        s = self.settings
        held_zones()  # every local time worked out from here reuses these
        pool = await self._open_database()
        await ensure_service_topics(s)
        self._producer = make_producer(s)
        await self._producer.start()
        self.relay = OutboxRelay(pool, self._producer, schema=s.schema,
                                 topic_prefix=s.topic_prefix,
                                 batch_size=s.outbox_batch_size, poll_seconds=s.outbox_poll_seconds,
                                 session_pool=self.direct)
        self._spawn("outbox-relay", self.relay.run())
        self._spawn("dlq-replay", self._replay_jobs())
        self._spawn("ops-history", record_samples(self))
        self._spawn(
            "retention",
            run_retention(
                pool,
                self.purges,
                batch_size=s.retention_batch_size,
                interval=s.retention_interval_seconds,
            ),
        )
        if self.audit.enabled:
            self._spawn("audit", self.audit.run(pool))
            self._spawn("audit-seal", audit_chain.sealing(pool))
            self._spawn("audit-retention", audit_chain.keep(pool, s.audit_retention_days,
                                                           s.retention_interval_seconds))
        await self.broker.start()
        for name, worker in self.workers:
            self._spawn(name, worker(self))
        log.info("%s: started", s.service_name)

    async def _replay_jobs(self, poll_seconds: float = 5.0) -> None:
        """Work the "replay all" jobs of dead letters, a batch at a time (`shared.dead_letters`),
        without holding a connection between batches."""
        while True:
            try:
                more = await dead_letters.replay_job_step(
                    self.db, topic_prefix=self.settings.topic_prefix
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database gone: the batch rolled back, try again later
                log.warning("dlq replay job step failed (%s)", type(exc).__name__)
                more = False
            if not more:
                self.replay_jobs_wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.replay_jobs_wake.wait(), poll_seconds)

    def _spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro, name=f"{self.settings.service_name}:{name}")
        task.add_done_callback(self._on_task_done)
        self._tasks.append(task)

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s died", task.get_name(), exc_info=task.exception())

    async def stop(self) -> None:
        pending = set(self._tasks)
        for _ in range(50 if pending else 0):  # a task that swallowed its cancellation: again
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.2)
            if not pending:
                break
        if pending:
            log.error("tasks still running at shutdown: %s", [t.get_name() for t in pending])
        self._tasks.clear()
        await self._flush_audit()
        await self.lag_reader.close()
        # bounded: leaving the group or flushing must not hang on an unreachable broker
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.broker.stop(), 10)
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._producer.stop(), 5)
        if self.direct is not None and self.direct is not self.pool:
            await self.direct.close()
        self.direct = None
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    async def _flush_audit(self) -> None:
        """Write the reads still in memory and seal them (a clean stop loses none)."""
        if self.pool is None or not self.audit.enabled:
            return
        await self.audit.flush(self.pool)
        if self.audit.pending:
            log.error("audit: %d reads could not be written at shutdown", len(self.audit.pending))
        with contextlib.suppress(Exception):
            await audit_chain.seal(self.pool)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        if await stoppable(self.start()):
            settle_collector()
        try:
            yield
        finally:
            await self.stop()

    async def readiness(self) -> dict[str, str]:
        """Whether PostgreSQL and the broker answer."""
        checks = {}
        try:
            async with self.db.acquire(timeout=2) as conn:
                await conn.fetchval(DB.ping)
            checks["postgres"] = "ok"
        except Exception as exc:
            checks["postgres"] = f"unavailable: {type(exc).__name__}"
        try:
            client = self._producer.client  # AttributeError before start: unavailable
            ok = await asyncio.wait_for(client.fetch_all_metadata(), 3)
            checks["kafka"] = "ok" if ok is not None else "unavailable"
        except Exception as exc:
            checks["kafka"] = f"unavailable: {type(exc).__name__}"
        return checks


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def stoppable(start: Coroutine[Any, Any, None]) -> bool:
    """Run start-up `start`, cancelled by a SIGTERM or SIGINT meanwhile; True if it finished.

    uvicorn notes a signal during start-up but acts on it only once start-up returns, and
    start-up can wait a minute or more on a PostgreSQL or Kafka that does not answer. Here the
    signal also cancels start-up, so the service stops at once (the lifespan then yields, and
    uvicorn, which saw the signal too, shuts down without serving)."""
    task = asyncio.ensure_future(start)
    loop = asyncio.get_running_loop()
    signalled: list[int] = []
    previous: dict[int, Any] = {}

    def on_signal(sig: int, frame: Any) -> None:
        if not task.done():
            signalled.append(sig)
            with contextlib.suppress(RuntimeError):  # its loop closed: nothing left to stop
                loop.call_soon_threadsafe(task.cancel)
        if callable(previous.get(sig)):
            previous[sig](sig, frame)

    with contextlib.suppress(ValueError):  # not the main thread: no signals to watch
        for sig in STOP_SIGNALS:
            previous[sig] = signal.signal(sig, on_signal)
    try:
        await task
        return True
    except asyncio.CancelledError:
        if not signalled or not task.cancelled():
            raise
        log.warning("stopped during start-up (signal %d)", signalled[0])
        return False
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def settle_collector() -> None:
    """Tune the garbage collector for serving, once start-up is done (the services, and the
    benchmarks' stand-ins for them). What start-up built (modules, schemas, pools) lives as
    long as the process: frozen out of the collector's view, full collections stay short
    (request latency p99). A request allocates hundreds of objects, nearly all freed by
    reference counting: at the default threshold (700) the youngest generation was collected
    about every request (5% of a booking's CPU); every `GC_YOUNG` allocations instead."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])


async def check_search_path(pool: asyncpg.Pool, schema: str) -> None:
    """Refuse to start when the pool's connections do not resolve names in `schema`: a
    PgBouncer that drops the search_path the service asks for (see the README's "PostgreSQL
    behind PgBouncer") would otherwise have it read and write another schema's tables."""
    async with pool.acquire() as conn:
        found = await conn.fetchval(DB.current_schema)
    if found != schema:
        raise RuntimeError(
            f"names resolve to schema {found!r}, not {schema!r}: a pooler between the service "
            "and PostgreSQL must set the search path (PgBouncer: track_extra_parameters = "
            "search_path from 1.20, else a database entry with connect_query or the role's own "
            "search_path)")


def service_app(runtime: ServiceRuntime, title: str, *routers: APIRouter) -> FastAPI:
    """The FastAPI app of a service: its routers, `/health`, `/ready`, domain error mapping,
    control characters refused in every path and query value; the runtime opens and closes
    with the app's lifespan."""
    from shared.audit import AuditMiddleware
    from shared.audit_api import audit_router
    from shared.errors import install_error_handlers
    from shared.http_metrics import RequestContext
    from shared.ops_api import ops_routers
    from shared.validation import refuse_control_characters

    # FastAPI's own OpenTelemetry (not this project's: shared.tracing) stays off: it would
    # only defer to the FastAPIInstrumentor while tracing is on, and asked on each request
    # whether a global provider was set (1% of a booking's CPU)
    app = FastAPI(title=title, version="0.1.0", lifespan=runtime.lifespan,
                  dependencies=[Depends(refuse_control_characters)],
                  telemetry={"tracing": False, "metrics": False, "logs": False})
    app.state.runtime = runtime
    install_error_handlers(app)
    if runtime.audit.enabled:
        app.add_middleware(AuditMiddleware)
    app.add_middleware(RequestContext)
    # the service's own routes first: a request tries the routes in order, and these take
    # the traffic (no path of one router is also another's, so the order changes no answer:
    # tests/test_routes.py)
    for router in routers:
        include_flat(app, router)
    include_flat(app, health_router(runtime))
    for ops in ops_routers():
        include_flat(app, ops)
    if runtime.audit.enabled:
        include_flat(app, audit_router())
    tracing.instrument_app(app)  # a span per request, while tracing is on
    return app


def include_flat(app: FastAPI, router: APIRouter) -> None:
    """Add `router`'s routes to the app's own router, in order, as `include_router` did
    before FastAPI 0.137. It now keeps each included router as one node that every request
    walks through, matching its route twice with a layer of bookkeeping per route it tries
    (a fifth of a booking's CPU in the service); a flat list is matched once. A route keeps
    its path, tags and dependencies (its router's, already joined to it), behind the app's
    own dependencies. A router holding anything but plain `APIRoute`s (a router included
    in it) is included as it is."""
    if not all(type(route) is APIRoute for route in router.routes):
        app.include_router(router)
        return
    for route in router.routes:
        assert isinstance(route, APIRoute)
        app.router.add_api_route(
            route.path, route.endpoint, response_model=route.response_model,
            status_code=route.status_code, tags=route.tags, dependencies=route.dependencies,
            summary=route.summary, description=route.description,
            response_description=route.response_description, responses=route.responses,
            deprecated=route.deprecated, methods=route.methods, operation_id=route.operation_id,
            response_model_include=route.response_model_include,
            response_model_exclude=route.response_model_exclude,
            response_model_by_alias=route.response_model_by_alias,
            response_model_exclude_unset=route.response_model_exclude_unset,
            response_model_exclude_defaults=route.response_model_exclude_defaults,
            response_model_exclude_none=route.response_model_exclude_none,
            include_in_schema=route.include_in_schema, response_class=route.response_class,
            name=route.name, callbacks=route.callbacks, openapi_extra=route.openapi_extra,
            generate_unique_id_function=route.generate_unique_id_function,
            strict_content_type=route.strict_content_type, max_body_size=route.max_body_size,
            form_limits=route.form_limits)


def health_router(runtime: ServiceRuntime) -> APIRouter:
    """`/health` (the process is alive) and `/ready` (its PostgreSQL and broker answer)."""
    router = APIRouter(tags=["health"])

    @router.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "service": runtime.settings.service_name}

    @router.get("/ready")
    async def ready() -> JSONResponse:
        checks = await runtime.readiness()
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if ok else "unavailable", **checks},
                            status_code=200 if ok else 503)

    return router


def db_of(request: Request) -> asyncpg.Pool:
    """The pool of the service answering `request` (its runtime hangs on the app's state)."""
    pool: asyncpg.Pool = request.app.state.runtime.db
    return pool


def settings_of(request: Request) -> Any:
    """The settings of the service answering `request` (the caller names their class)."""
    return request.app.state.runtime.settings
