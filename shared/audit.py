"""The audit trail: who read or changed which patient's data, through which API, with what
outcome (HIPAA's audit controls). Every service records, in its own schema (`audit_log`):

- each request to its API (reads and lists, FHIR, texts, dead-letter views, sign-ins and
  refusals included) by `AuditMiddleware`: the request only appends to a list in memory,
  and `AuditTrail.run` writes the list every `FLUSH_SECONDS` (and on a clean stop);
- each change, in the change's own transaction, by `record` (the middleware then skips it).

An entry names the actor (a person by staff id, or an API key by label, with the role), the
network, the patients concerned (ids found in the path, the query and the JSON answer, and
the `patient_id` a refused or not-found change's body names), the action (the route's name)
and resource (method and path: ids only), the outcome (allowed, refused, not found, failed),
the time, the client's address and the correlation id; never a body, a name or a phone
number. The hash chain and its verification are shared/audit_chain.py, the `/audit`
endpoints shared/audit_api.py."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl
from uuid import UUID

import asyncpg
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.db import Connection, Queries
from shared.proxies import is_trusted

Q = Queries(Path(__file__).with_name("audit.sql"))
log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.5
"""Reads are written at most this long after their answer (a crash loses at most these)."""
MAX_PENDING = 100_000
"""Reads kept in memory while PostgreSQL is unreachable; older ones are dropped (logged)."""
BODY_CAP = 4 * 1024 * 1024
"""Answers larger than this are not scanned for patient ids beyond this many bytes."""
UNAUDITED = frozenset({
    "/health", "/ready", "/metrics", "/asyncapi.json", "/docs", "/docs/oauth2-redirect",
    "/redoc", "/openapi.json", "/ops/dashboard", "/ops/vendor/{name}", "/ops/status",
    "/ops/overview", "/ops/history", "/ops/overview/history", "/ops/outbox",
    "/twilio/status", "/twilio/inbound"})
"""Routes without patient data or people behind them (Twilio's signed webhooks are the
carrier's, not a person's)."""
COLUMNS = ("at", "clinic_id", "actor_clinic_id", "actor_kind", "staff_id", "actor_label", "role",
           "action", "resource", "patient_ids", "outcome", "status", "client", "correlation_id")
_PATIENT = re.compile(rb'"patient_id":\s*"([0-9a-f-]{36})"|"Patient/([0-9a-f-]{36})"')
_ID = re.compile(rb'"id":\s*"([0-9a-f-]{36})"')
REQUEST_CAP = 64 * 1024
"""A change's request body is kept up to this size, to name the patient it asked for when it
is refused or not found (until the batch is written; other requests' bodies are not kept)."""
CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PATIENT_ROUTES = frozenset({"/patients", "/patients/search", "/patient-names"})
"""Routes whose answers' `id`s are patients' ids."""
_PARAM = re.compile(r"{(\w+)(?::\w+)?}")
_CODE = re.compile(r"[a-z0-9_]{1,64}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a person (`staff`), an API key (`key`, by label), the ops token (`ops`), the
    platform operator (`operator`), the service itself (`system`) or nobody known."""

    kind: str
    clinic_id: UUID | None = None
    staff_id: UUID | None = None
    label: str | None = None
    role: str | None = None

    @classmethod
    def of(cls, principal: Any) -> Actor:
        """The actor a `shared.auth.Principal` stands for (a person's name is not kept)."""
        if principal.staff_id is not None:
            return cls("staff", principal.clinic_id, principal.staff_id, None, principal.role)
        return cls("key", principal.clinic_id, None, principal.label, principal.role)


ANONYMOUS = Actor("anonymous")
OPS = Actor("ops", label="ops token", role="ops")
OPERATOR = Actor("operator", label="platform operator")


@dataclass(slots=True)
class Entry:
    """One row of `audit_log` (`id` once stored)."""

    at: datetime
    clinic_id: UUID | None
    actor_clinic_id: UUID | None
    actor_kind: str
    staff_id: UUID | None
    actor_label: str | None
    role: str | None
    action: str
    resource: str
    patient_ids: list[UUID]
    outcome: str
    status: int | None
    client: str | None
    correlation_id: str | None
    id: int | None = field(default=None)

    def record(self) -> tuple[Any, ...]:
        """The values in COLUMNS order."""
        return (self.at, self.clinic_id, self.actor_clinic_id, self.actor_kind, self.staff_id,
                self.actor_label, self.role, self.action, self.resource, self.patient_ids,
                self.outcome, self.status, self.client, self.correlation_id)

    def inline(self) -> tuple[Any, ...]:
        """The values in COLUMNS order without `patient_ids`, for a statement that writes
        the entry with its change and takes the patient from the changed row."""
        record = self.record()
        return record[:9] + record[10:]

    @classmethod
    def from_row(cls, row: Any) -> Entry:
        return cls(**{k: row[k] for k in (*COLUMNS, "id")})


def outcome_of(status: int) -> str:
    """allowed (2xx, 3xx), refused (401, 403, 429), not_found (404), failed (the rest)."""
    if status < 400:
        return "allowed"
    if status in (401, 403, 429):
        return "refused"
    return "not_found" if status == 404 else "failed"


def patient_ids_in(body: bytes | str, ids_are_patients: bool = False) -> list[UUID]:
    """The patient ids a JSON answer names (`"patient_id": "..."`, FHIR `Patient/...`, and
    every `"id"` when `ids_are_patients`), in order of first appearance."""
    if isinstance(body, str):
        body = body.encode()
    body = body[:BODY_CAP]
    found = [a or b for a, b in _PATIENT.findall(body)]
    if ids_are_patients:
        found += _ID.findall(body)
    seen: dict[UUID, None] = {}
    for raw in found:
        try:
            seen.setdefault(UUID(raw.decode()), None)
        except ValueError:
            continue
    return list(seen)


def patients_named_by(request_body: bytes) -> list[UUID]:
    """The patient a change's JSON body names (its top-level `patient_id`), if any: the id
    only, nothing else of the body."""
    try:
        asked = json.loads(request_body)
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
        return []
    pid = _uuid(asked.get("patient_id")) if isinstance(asked, dict) else None
    return [] if pid is None else [pid]


def _uuid(value: Any) -> UUID | None:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        return None


def _asked_patients(scope: Scope) -> list[UUID]:
    """Patient ids in the path (`patient_id`) and the query (`patient_id`, FHIR `patient`)."""
    found = []
    for name, value in (scope.get("path_params") or {}).items():
        if "patient" in name and (pid := _uuid(value)) is not None:
            found.append(pid)
    query = scope.get("query_string") or b""
    if b"patient" in query:
        for name, value in parse_qsl(query.decode("latin-1")):
            if name in ("patient_id", "patient"):
                pid = _uuid(value.removeprefix("Patient/"))
                if pid is not None:
                    found.append(pid)
    return found


def resource_of(scope: Scope) -> str:
    """Method and path, with only the path's ids and codes filled in (e.g. GET
    /patients/<uuid>/texts, POST /plan-templates/kap); any other value stays as its name in
    the route."""
    route = scope.get("route")
    template = getattr(route, "path", None) or "unmatched"
    params = scope.get("path_params") or {}

    def fill(match: re.Match[str]) -> str:
        value = params.get(match.group(1))
        if isinstance(value, (UUID, int)) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, str) and (_UUID.fullmatch(value) or _CODE.fullmatch(value)):
            return value.lower()
        return match.group(0)

    return f"{scope.get('method', '')} {_PARAM.sub(fill, template)}"


def _client(scope: Scope, proxies: str) -> str | None:
    peer: str | None = (scope.get("client") or (None,))[0]
    if peer is None or not proxies:
        return peer
    if not is_trusted(peer, proxies):
        return peer
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-for":
            last = value.decode("latin-1").split(",")[-1].strip()
            try:
                return str(ipaddress.ip_address(last))
            except ValueError:
                return peer
    return peer


def _actor(state: dict[str, Any]) -> Actor:
    actor: Actor | None = state.get("audit_actor")
    if actor is not None:
        return actor
    if (principal := state.get("principal")) is not None:
        return Actor.of(principal)
    return ANONYMOUS


class AuditTrail:
    """A service's audit trail: reads waiting to be written, and the writer that empties the
    list every FLUSH_SECONDS (`run`, a worker of the runtime; `flush` on a clean stop).

    `owner_query` ($1: patient ids) answers (patient id, clinic id) for the patients this
    service knows: a 404 about another network's patient is then also recorded, as refused,
    in that network's trail."""

    def __init__(self, *, owner_query: str | None = None, proxies: str = "",
                 enabled: bool = True) -> None:
        self.owner_query = owner_query
        self.proxies = proxies
        self.enabled = enabled
        self.pending: list[tuple[Scope, int, bytes]] = []
        self.dropped = 0
        self._writing = asyncio.Lock()
        """One flush at a time: a flush asked for while another writes waits for its rows to
        be committed, so "flushed" means written (a clean stop, a test, an export)."""

    # --- the request path: as little as possible ---------------------------------------

    def note(self, scope: Scope, status: int, body: bytes) -> None:
        """Keep a request's answer to be written with the next batch."""
        if len(self.pending) >= MAX_PENDING:
            self.pending.pop(0)
            self.dropped += 1
        self.pending.append((scope, status, body))

    # --- building entries ----------------------------------------------------------------

    def entry(self, scope: Scope, status: int, body: bytes | str = b"", *,
              patients: list[UUID] | tuple[UUID, ...] = (), action: str | None = None,
              actor: Actor | None = None, at: datetime | None = None) -> Entry:
        """The entry of a request (its scope) answered with `status` and `body`."""
        state = scope.get("state") or {}
        who = actor or _actor(state)
        route = scope.get("route")
        in_body = patient_ids_in(body, getattr(route, "path", None) in PATIENT_ROUTES)
        named = patients_named_by(scope["audit_asked"]) if "audit_asked" in scope else []
        found = dict.fromkeys([*patients, *_asked_patients(scope), *named, *in_body])
        return Entry(
            at=at or datetime.now(UTC), clinic_id=who.clinic_id, actor_clinic_id=who.clinic_id,
            actor_kind=who.kind, staff_id=who.staff_id, actor_label=who.label, role=who.role,
            action=action or getattr(route, "name", None) or "unmatched",
            resource=resource_of(scope), patient_ids=list(found), outcome=outcome_of(status),
            status=status, client=_client(scope, self.proxies),
            correlation_id=state.get("correlation_id"))

    async def _owners(self, conn: Connection, entries: list[Entry]) -> list[Entry]:
        """For each 404 about another network's patient, an entry in that network's trail
        saying refused (the actor's own trail keeps what the actor was told, not found, so
        that it learns nothing of the other network)."""
        missed = [e for e in entries if e.outcome == "not_found" and e.patient_ids]
        if not missed or self.owner_query is None:
            return []
        ids = list({p for e in missed for p in e.patient_ids})
        owners = {r[0]: r[1] for r in await conn.fetch(self.owner_query, ids)}
        copies = []
        for e in missed:
            others = {owners[p] for p in e.patient_ids if p in owners} - {e.actor_clinic_id}
            copies += [replace(e, clinic_id=other, outcome="refused") for other in sorted(others)]
        return copies

    # --- writing -------------------------------------------------------------------------

    async def flush(self, pool: asyncpg.Pool) -> int:
        """Write the reads kept so far (one COPY); on failure they are kept for the next try.
        Returns how many were written; waits for a flush already under way."""
        async with self._writing:
            return await self._write(pool)

    async def _write(self, pool: asyncpg.Pool) -> int:
        batch, self.pending = self.pending, []
        if not batch:
            return 0
        try:
            entries = [self.entry(scope, status, body, at=scope.get("audit_at"))
                       for scope, status, body in batch]
            async with pool.acquire() as conn:
                entries += await self._owners(conn, entries)
                await conn.copy_records_to_table("audit_log", records=[e.record() for e in entries],
                                                 columns=COLUMNS)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            self.pending[:0] = batch
            log.warning("audit: %d reads not written yet (%s)", len(batch), type(exc).__name__)
            return 0
        if self.dropped:
            log.error("audit: %d reads dropped while the database was unreachable", self.dropped)
            self.dropped = 0
        return len(entries)

    async def run(self, pool: asyncpg.Pool) -> None:
        """Write the reads every FLUSH_SECONDS (a worker of the runtime)."""
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            try:
                # shielded: a stop cancelling this worker mid-COPY neither loses the batch
                # nor leaves it half-known; the stop's own flush waits for it, then writes
                # the rest
                await asyncio.shield(self.flush(pool))
            except Exception:  # a bug in building an entry must not stop the trail
                log.exception("audit: a batch of reads could not be written")


async def record(conn: Connection, request: Any, *, body: bytes | str = b"",
                 patients: list[UUID] | tuple[UUID, ...] = (), action: str | None = None,
                 actor: Actor | None = None, status: int = 200) -> None:
    """Record a change in the caller's transaction (`conn`): the request's actor, the
    patients in `patients`, the path and `body` (the answer about to be sent)."""
    trail: AuditTrail = request.app.state.runtime.audit
    if not trail.enabled:
        return
    entry = trail.entry(request.scope, status, body, patients=patients, action=action,
                        actor=actor)
    await conn.execute(Q.insert_entry, *entry.record())
    request.state.audited = status  # the middleware skips the request if it answers this


def act_as(request: Any, actor: Actor) -> None:
    """Name the actor of a request that has no key or token (ops token, operator, sign-in)."""
    request.state.audit_actor = actor


class AuditMiddleware:
    """Notes every API request's answer in the runtime's trail (unless it recorded itself with
    `record` and answered what it recorded: a change that failed after recording rolled back).
    The request pays one list append; the answer's bytes are kept, unparsed, until the batch
    is written."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        trail: AuditTrail = scope["app"].state.runtime.audit
        if not trail.enabled:
            return await self.app(scope, receive, send)
        status = 500
        chunks: list[bytes] = []
        size = 0
        asked: list[bytes] = []

        async def keep_asked() -> Message:
            message = await receive()
            if message["type"] == "http.request" and sum(map(len, asked)) < REQUEST_CAP:
                asked.append(message.get("body", b""))
            return message

        async def capture(message: Message) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and status < 300 and size < BODY_CAP \
                    and not (scope.get("state") or {}).get("audit_no_body"):
                body = message.get("body", b"")
                chunks.append(body)
                size += len(body)
            await send(message)

        change = scope["method"] in CHANGES
        try:
            await self.app(scope, keep_asked if change else receive, capture)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None)
            state = scope.get("state") or {}
            if path is not None and path not in UNAUDITED and state.get("audited") != status:
                scope["audit_at"] = datetime.now(UTC)
                if change and asked and outcome_of(status) in ("refused", "not_found"):
                    scope["audit_asked"] = b"".join(asked)  # the patient it names, at the flush
                trail.note(scope, status, b"".join(chunks))
