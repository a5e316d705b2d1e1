"""Every change through any service's API is in the audit trail in the change's own
transaction (issue 20: "Writes are recorded in the same transaction as the change").

The guard walks every POST, PUT, PATCH and DELETE route of booking, plans and the notifier
and sends each the same request twice, while triggers note every row written to the
service's tables with its top-level transaction id (`txid_current()`):

1. with its audit entry refused by the database (a trigger raises on that one request's
   entry): the request fails, and nothing it wrote before the entry remains;
2. as it is: it succeeds, the trail holds exactly one entry of it (of its route, allowed),
   and that entry's transaction is one that wrote the change's rows.

(Not caught: a route that writes part of its change in a second transaction after the
entry's.) A new route fails the guard until it has a case here or a listed reason."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import pytest

from services.booking.bootstrap import bootstrap as booking_app
from services.notifier.bootstrap import bootstrap as notifier_app
from services.plans.bootstrap import bootstrap as plans_app
from shared.audit import CHANGES
from shared.events import parse_envelope
from tests.conftest import ADMIN_TOKEN, RunningService, Spine, eventually
from tests.console_helpers import signed_inbound
from tests.helpers import Network, add_patient, create_network, key_everywhere
from tests.staff_helpers import PASSWORD, add_person, bearer, sign_in
from tests.test_audit import entries, flushed
from tests.test_booking_rules import ALL_DAY, next_local
from tests.test_visit_modes import within_a_day

OPS_TOKEN = "audit-changes-ops-token"
OPS = {"X-Ops-Token": OPS_TOKEN}
DOOMED = "dddddddd-"
"""Correlation ids starting so are the requests whose audit entry the database refuses."""

READ = "changes nothing: recorded as a read"
WEBHOOK = "Twilio's signed webhook: the carrier's, not a person's (shared.audit.UNAUDITED)"
ONLINE = ("the public page's changes and the lead seen: in their transaction, shown by"
          " tests/test_online_booking.py::test_each_change_of_the_public_page_is_in_the_audit_"
          "trail_with_the_change (a request needs the code texted to the visitor)")
EXCEPTIONS = {
    ("booking", "POST", "/patients/search"): f"a search (names stay out of URLs): {READ}",
    ("booking", "POST", "/auth/refresh"): f"a new token for a session still open: {READ}",
    ("notifier", "POST", "/templates/preview"): f"renders words for a sample: {READ}",
    ("notifier", "POST", "/twilio/status"): WEBHOOK,
    ("notifier", "POST", "/twilio/inbound"): WEBHOOK,
    ("booking", "POST", "/online/{slug}/requests"): ONLINE,
    ("booking", "POST", "/online/{slug}/requests/{request_id}/verify"): ONLINE,
    ("booking", "POST", "/bookings/{booking_id}/lead-seen"): ONLINE,
}
"""Mutating routes the guard does not hold to a change entry, and why."""

NOT_THE_CHANGE = frozenset({"audit_log", "audit_seals", "outbox", "dispatcher_leases",
                            "ops_samples", "test_writes"})
"""Tables whose writes are not taken for a request's change: the trail itself (its entries
are noted apart); the outbox, whose relay rewrites the rows it publishes (an event is
written with its change, whose other rows show it); the notifier dispatcher's lease, which
its worker renews every few seconds; the ops history, which every runtime samples every
`shared.ops_history.SAMPLE_SECONDS` (a sample landing while a request is refused was taken
for that request's change); and the test's own notes."""


def mutating_routes(app: Any) -> dict[tuple[str, str], str]:
    """The name of every route of `app` that may change something, by (method, path)."""
    found = {}

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            if hasattr(route, "original_router"):  # an included router (FastAPI >= 0.16x)
                walk(route.original_router.routes, prefix + route.include_context.prefix)
            elif hasattr(route, "routes") and not hasattr(route, "endpoint"):
                walk(route.routes, prefix + getattr(route, "path", ""))
            else:
                for method in (getattr(route, "methods", None) or set()) & CHANGES:
                    found[(method, prefix + route.path)] = route.name
    walk(app.routes, "")
    return found


Send = Callable[[dict[str, str]], Awaitable[httpx.Response]]


@dataclass
class World:
    """What the cases share: the running services, the network and a plain connection."""

    spine: Spine
    db: asyncpg.Connection
    net: Network
    remote_ways_set: bool = False
    counter: list[int] = field(default_factory=lambda: [0])

    def svc(self, name: str) -> RunningService:
        return getattr(self.spine, name)

    def next(self) -> int:
        self.counter[0] += 1
        return self.counter[0]


Case = Callable[[World], Awaitable[Send]]
CASES: list[tuple[str, str, str, Case]] = []


def case(service: str, method: str, path: str) -> Callable[[Case], Case]:
    """Register a case: it prepares what the route needs and returns how to send it."""
    def register(prepare: Case) -> Case:
        CASES.append((service, method, path, prepare))
        return prepare
    return register


def post(w: World, service: str, path: str, headers: dict[str, str] | None = None,
         method: str = "POST", **kwargs: Any) -> Send:
    """Send a POST (or `method`) to `service` with the network's admin key (or `headers`)."""
    async def send(extra: dict[str, str]) -> httpx.Response:
        return await w.svc(service).http.request(
            method, path, headers={**(headers or w.net.headers), **extra}, **kwargs)
    return send


async def ok(response: Awaitable[httpx.Response]) -> dict:
    answered = await response
    assert answered.status_code in (200, 201, 202), answered.text
    return answered.json()


async def a_booking(w: World, **fields: Any) -> dict:
    """A new booking (an assessment a few days ahead, at an hour not used before)."""
    n = w.next()
    body = {"patient_id": w.net.patient["id"], "site_id": w.net.site["id"],
            "session_type": "assessment",
            "starts_at": next_local(w.net.site["timezone"], days=3 + n // 10, hour=n % 10 + 8),
            **fields}
    return await ok(w.svc("booking").http.post("/bookings", headers=w.net.headers, json=body))


async def a_dead_letter(w: World, service: str) -> int:
    svc = w.svc(service)
    return await w.db.fetchval(
        f'INSERT INTO "{svc.schema}".dead_letters (consumer, topic, partition, "offset", key,'
        " value, error) VALUES ($1, 'x.events', 0, $2, 'k', '{poison'::bytea, 'invalid event')"
        " RETURNING id", service, w.next())


async def remote_ways(w: World) -> None:
    if not w.remote_ways_set:
        await ok(w.svc("booking").http.post("/clinic/remote-visits", headers=w.net.headers, json={
            "video_link_template": "https://meet.example.com/c-{code}"}))
        w.remote_ways_set = True


# --- booking -----------------------------------------------------------------------------

@case("booking", "POST", "/clinics")
async def _add_clinic(w: World) -> Send:
    return post(w, "booking", "/clinics", {"X-Admin-Token": ADMIN_TOKEN},
                json={"name": "Another network", "phone": "+1 604 555 0100"})


@case("booking", "POST", "/api-keys")
async def _issue_key(w: World) -> Send:
    return post(w, "booking", "/api-keys", json={"role": "read-only", "label": "desk"})


@case("booking", "POST", "/api-keys/{key_id}/revoke")
async def _revoke_key(w: World) -> Send:
    key = await ok(w.svc("booking").http.post("/api-keys", headers=w.net.headers,
                                              json={"role": "read-only", "label": "old desk"}))
    return post(w, "booking", f"/api-keys/{key['id']}/revoke")


@case("booking", "POST", "/sites")
async def _add_site(w: World) -> Send:
    return post(w, "booking", "/sites", json={
        "name": "Second", "address": "2 Main St", "phone": "+1 604 555 0102",
        "timezone": "America/Vancouver", "hours": ALL_DAY})


@case("booking", "POST", "/sites/{site_id}/closures")
async def _add_closure(w: World) -> Send:
    return post(w, "booking", f"/sites/{w.net.site['id']}/closures",
                json={"first_day": "2030-01-01", "last_day": "2030-01-01"})


@case("booking", "POST", "/rooms")
async def _add_room(w: World) -> Send:
    return post(w, "booking", "/rooms", json={"site_id": w.net.site["id"], "name": "Room B"})


@case("booking", "POST", "/providers")
async def _add_provider(w: World) -> Send:
    return post(w, "booking", "/providers", json={"name": "Provider B", "hours": [
        {"site_id": w.net.site["id"], "weekday": 1, "opens": "08:00", "closes": "09:00"}]})


@case("booking", "PATCH", "/providers/{provider_id}")
async def _update_provider(w: World) -> Send:
    added = await ok(w.svc("booking").http.post("/providers", headers=w.net.headers, json={
        "name": "Provider C", "hours": [
            {"site_id": w.net.site["id"], "weekday": 2, "opens": "08:00", "closes": "09:00"}]}))
    return post(w, "booking", f"/providers/{added['id']}", method="PATCH",
                json={"consultations": False})


@case("booking", "POST", "/clinic/remote-visits")
async def _remote_ways(w: World) -> Send:
    return post(w, "booking", "/clinic/remote-visits",
                json={"video_link_template": "https://meet.example.com/v-{code}"})


@case("booking", "POST", "/session-types/{code}/override")
async def _override_type(w: World) -> Send:
    return post(w, "booking", "/session-types/assessment/override", json={"duration_minutes": 50})


@case("booking", "POST", "/session-types/{code}/prep-items")
async def _prep_items(w: World) -> Send:
    return post(w, "booking", "/session-types/iv_infusion/prep-items", json={
        "en": "a warm sweater", "fr": "un pull chaud", "es": "un suéter"})


@case("booking", "POST", "/patients")
async def _register_patient(w: World) -> Send:
    return post(w, "booking", "/patients", json={
        "given_name": "Robin", "family_name": "Test", "phone": "604-555-0178",
        "sms_consent": True})


@case("booking", "POST", "/patients/{patient_id}/timezone")
async def _patient_timezone(w: World) -> Send:
    return post(w, "booking", f"/patients/{w.net.patient['id']}/timezone",
                json={"timezone": "America/Toronto"})


@case("booking", "POST", "/bookings")
async def _book(w: World) -> Send:  # no Idempotency-Key: one statement writes both
    return post(w, "booking", "/bookings", json={
        "patient_id": w.net.patient["id"], "site_id": w.net.site["id"],
        "session_type": "assessment", "starts_at": next_local(w.net.site["timezone"], days=9)})


@case("booking", "POST", "/bookings")
async def _book_with_a_key(w: World) -> Send:  # with one: a transaction keeps the answer too
    return post(w, "booking", "/bookings", {**w.net.headers, "Idempotency-Key": str(uuid4())},
                json={"patient_id": w.net.patient["id"], "site_id": w.net.site["id"],
                      "session_type": "assessment",
                      "starts_at": next_local(w.net.site["timezone"], days=10)})


@case("booking", "POST", "/bookings/series")
async def _book_series(w: World) -> Send:
    await remote_ways(w)
    tz = w.net.site["timezone"]
    return post(w, "booking", "/bookings/series", json={
        "patient_id": w.net.patient["id"], "site_id": w.net.site["id"],
        "session_type": "integration", "mode": "video",
        "starts_at": [next_local(tz, days=11), next_local(tz, days=12)]})


@case("booking", "POST", "/bookings/{booking_id}/reschedule")
async def _reschedule(w: World) -> Send:
    made = await a_booking(w)
    return post(w, "booking", f"/bookings/{made['id']}/reschedule",
                json={"starts_at": next_local(w.net.site["timezone"], days=13)})


def on_a_booking(action: str, body: dict[str, str] | None = None) -> None:
    """Register the case of a booking's action that needs only a booking."""
    async def prepare(w: World) -> Send:
        made = await a_booking(w)
        return post(w, "booking", f"/bookings/{made['id']}/{action}", json=body)
    case("booking", "POST", f"/bookings/{{booking_id}}/{action}")(prepare)


on_a_booking("cancel", {"reason": "unwell"})
on_a_booking("check-in")
on_a_booking("ride", {"ride_status": "requested"})


@case("booking", "POST", "/bookings/{booking_id}/complete")
async def _complete(w: World) -> Send:
    made = await a_booking(w)
    await ok(w.svc("booking").http.post(f"/bookings/{made['id']}/check-in", headers=w.net.headers))
    return post(w, "booking", f"/bookings/{made['id']}/complete")


@case("booking", "POST", "/bookings/{booking_id}/no-show")
async def _no_show(w: World) -> Send:
    made = await a_booking(w)
    await w.db.execute(  # the session started 10 minutes ago
        f'UPDATE "{w.svc("booking").schema}".bookings SET starts_at = now() - interval'
        " '10 minutes', ends_at = now() + interval '35 minutes', occupied_until = now() +"
        " interval '80 minutes' WHERE id = $1", made["id"])
    return post(w, "booking", f"/bookings/{made['id']}/no-show")


@case("booking", "POST", "/bookings/{booking_id}/support-person/confirm")
async def _support_person(w: World) -> Send:
    await remote_ways(w)
    made = await ok(w.svc("booking").http.post("/bookings", headers=w.net.headers, json={
        "patient_id": w.net.patient["id"], "site_id": w.net.site["id"],
        "session_type": "home_low_dose", "mode": "home",
        "starts_at": within_a_day(w.net.site["timezone"]),
        "support_person": {"name": "Sam Support", "phone": "604-555-0188", "sms_consent": True}}))
    return post(w, "booking", f"/bookings/{made['id']}/support-person/confirm")


@case("booking", "POST", "/waitlist")
async def _join_waitlist(w: World) -> Send:
    return post(w, "booking", "/waitlist", json={
        "patient_id": w.net.patient["id"], "site_id": w.net.site["id"],
        "session_type": "iv_infusion", "window_start": "2030-01-01T00:00:00Z",
        "window_end": "2030-01-02T00:00:00Z"})


@case("booking", "POST", "/waitlist/offers/{offer_id}/accept")
async def _accept_offer(w: World) -> Send:
    http, headers = w.svc("booking").http, w.net.headers
    slot = await a_booking(w, session_type="iv_infusion",
                           starts_at=next_local(w.net.site["timezone"], days=20))
    waiting = await add_patient(http, w.net, given_name="Wren")
    start = datetime.fromisoformat(slot["starts_at"])
    await ok(http.post("/waitlist", headers=headers, json={
        "patient_id": waiting["id"], "site_id": w.net.site["id"], "session_type": "iv_infusion",
        "window_start": (start - timedelta(days=1)).isoformat(),
        "window_end": (start + timedelta(days=1)).isoformat()}))
    await ok(http.post(f"/bookings/{slot['id']}/cancel", headers=headers, json={"reason": "x"}))
    rows = await w.db.fetch(f'SELECT value FROM "{w.svc("booking").schema}".outbox'
                            " WHERE event_type = 'WaitlistSlotOpened'")
    [opened] = [parse_envelope(r["value"]) for r in rows]
    return post(w, "booking", f"/waitlist/offers/{opened.payload.offer_id}/accept",
                json={"patient_id": waiting["id"]})


@case("booking", "POST", "/staff")
async def _add_staff(w: World) -> Send:
    return post(w, "booking", "/staff", json={
        "name": "Ash", "email": "ash@clinic.example", "role": "scheduler", "language": "en"})


@case("booking", "POST", "/staff/{staff_id}/role")
async def _change_role(w: World) -> Send:
    person = await add_person(w.svc("booking").http, w.net.headers, "scheduler", totp=False)
    return post(w, "booking", f"/staff/{person.id}/role", json={"role": "clinician"})


@case("booking", "POST", "/staff/{staff_id}/disable")
async def _disable(w: World) -> Send:
    person = await add_person(w.svc("booking").http, w.net.headers, "scheduler", totp=False)
    return post(w, "booking", f"/staff/{person.id}/disable")


@case("booking", "POST", "/staff/{staff_id}/enrolment")
async def _reset_enrolment(w: World) -> Send:
    person = await add_person(w.svc("booking").http, w.net.headers, "scheduler", totp=False)
    return post(w, "booking", f"/staff/{person.id}/enrolment")


async def an_enrolment_code(w: World) -> str:
    added = await ok(w.svc("booking").http.post("/staff", headers=w.net.headers, json={
        "name": "Kit", "email": f"kit{w.next()}@clinic.example", "role": "scheduler",
        "language": "en"}))
    return added["enrolment_code"]


@case("booking", "POST", "/auth/enrolment")
async def _start_enrolment(w: World) -> Send:
    return post(w, "booking", "/auth/enrolment", {}, json={"code": await an_enrolment_code(w)})


@case("booking", "POST", "/auth/enrolment/complete")
async def _complete_enrolment(w: World) -> Send:
    code = await an_enrolment_code(w)
    await ok(w.svc("booking").http.post("/auth/enrolment", json={"code": code}))
    return post(w, "booking", "/auth/enrolment/complete", {},
                json={"code": code, "password": PASSWORD})


@case("booking", "POST", "/auth/sign-in")
async def _sign_in(w: World) -> Send:
    person = await add_person(w.svc("booking").http, w.net.headers, "scheduler", totp=False)
    return post(w, "booking", "/auth/sign-in", {},
                json={"email": person.email, "password": person.password})


async def a_signed_in_person(w: World) -> dict[str, str]:
    person = await add_person(w.svc("booking").http, w.net.headers, "scheduler", totp=False)
    return bearer((await sign_in(w.svc("booking").http, person))["token"])


@case("booking", "POST", "/auth/sign-out")
async def _sign_out(w: World) -> Send:
    return post(w, "booking", "/auth/sign-out", await a_signed_in_person(w))


@case("booking", "POST", "/auth/language")
async def _language(w: World) -> Send:
    return post(w, "booking", "/auth/language", await a_signed_in_person(w),
                json={"language": "fr"})


# --- ops, on each service ------------------------------------------------------------------

def ops_cases(service: str) -> None:
    """The dead-letter actions every service has."""
    async def replay_all(w: World) -> Send:
        await a_dead_letter(w, service)
        return post(w, service, "/ops/dlq/replay", OPS, json={"actor": "on-call"})

    async def replay(w: World) -> Send:
        return post(w, service, f"/ops/dlq/{await a_dead_letter(w, service)}/replay", OPS,
                    json={"actor": "on-call"})

    async def discard(w: World) -> Send:
        return post(w, service, f"/ops/dlq/{await a_dead_letter(w, service)}/discard", OPS,
                    json={"actor": "on-call", "reason": "a test's poison"})

    case(service, "POST", "/ops/dlq/replay")(replay_all)
    case(service, "POST", "/ops/dlq/{letter_id}/replay")(replay)
    case(service, "POST", "/ops/dlq/{letter_id}/discard")(discard)


for _service in ("booking", "plans", "notifier"):
    ops_cases(_service)


# --- plans -------------------------------------------------------------------------------

async def a_patient_plans_knows(w: World) -> str:
    patient = await add_patient(w.svc("booking").http, w.net, given_name="Pax")
    plans = w.svc("plans").http

    async def known() -> bool:
        return (await plans.get(f"/patients/{patient['id']}/plans",
                                headers=w.net.headers)).status_code == 200
    await eventually(known, timeout=30)
    return patient["id"]


async def a_plan(w: World, template: str) -> dict:
    patient = await a_patient_plans_knows(w)
    return await ok(w.svc("plans").http.post("/plans", headers=w.net.headers,
                                             json={"patient_id": patient, "template": template}))


@case("plans", "POST", "/plans")
async def _start_plan(w: World) -> Send:
    return post(w, "plans", "/plans", json={"patient_id": await a_patient_plans_knows(w),
                                             "template": "iv_induction"})


@case("plans", "POST", "/plans/{plan_id}/rems-forms/{booking_id}/filed")
async def _file_rems_form(w: World) -> Send:
    plan = await a_plan(w, "esketamine_trd")
    session = uuid4()  # a session the plan asks a form for (as its events would have)
    await w.db.execute(f'INSERT INTO "{w.svc("plans").schema}".rems_forms (booking_id, plan_id,'
                       " due_at) VALUES ($1, $2, now() + interval '7 days')", session, plan["id"])
    return post(w, "plans", f"/plans/{plan['id']}/rems-forms/{session}/filed")


@case("plans", "POST", "/plans/{plan_id}/discontinue")
async def _discontinue(w: World) -> Send:
    plan = await a_plan(w, "kap")
    return post(w, "plans", f"/plans/{plan['id']}/discontinue")


@case("plans", "POST", "/plan-templates/{code}")
async def _override_template(w: World) -> Send:
    listed = await w.svc("plans").http.get("/plan-templates", headers=w.net.headers)
    [template, *_] = listed.json()
    return post(w, "plans", f"/plan-templates/{template['code']}", json=template["definition"])


@case("plans", "POST", "/settings")
async def _plans_settings(w: World) -> Send:
    return post(w, "plans", "/settings", json={"auto_create_plans": False})


# --- notifier ----------------------------------------------------------------------------

@case("notifier", "POST", "/policy")
async def _policy(w: World) -> Send:
    return post(w, "notifier", "/policy", json={"quiet_hours_start": 21, "quiet_hours_end": 8})


async def a_reply(w: World, words: str) -> int:
    """A text from the network's patient, as Twilio posts it; its id in the inbox."""
    notifier = w.svc("notifier")
    assert await signed_inbound(notifier, "+16045550177", words, f"SM{uuid4().hex}") == 200

    async def listed() -> int | None:
        items = (await notifier.http.get("/replies", headers=w.net.headers)).json()["items"]
        return next((i["id"] for i in items if i.get("body") == words), None)
    return await eventually(listed, timeout=30)


@case("notifier", "POST", "/replies/{reply_id}/read")
async def _read_reply(w: World) -> Send:
    return post(w, "notifier", f"/replies/{await a_reply(w, 'what should I bring')}/read")


@case("notifier", "POST", "/replies/{reply_id}/opt-out")
async def _opt_out(w: World) -> Send:
    return post(w, "notifier", f"/replies/{await a_reply(w, 'please stop these')}/opt-out")


@case("notifier", "POST", "/templates")
async def _template(w: World) -> Send:
    listed = (await w.svc("notifier").http.get("/templates", headers=w.net.headers)).json()
    kind, words = next(iter(listed["kinds"].items()))
    return post(w, "notifier", "/templates", json={
        "kind": kind, "language": "en", "body": words["built_in"]["en"]})


# --- the guard ---------------------------------------------------------------------------

@pytest.fixture
def spine_overrides() -> dict[str, dict]:
    return {name: {"ops_token": OPS_TOKEN} for name in ("booking", "plans", "notifier")}


@pytest.fixture
async def world(spine: Spine, db: asyncpg.Connection) -> AsyncIterator[World]:
    """A network known to every service, and each service's trail refusing the entries
    that requests whose correlation id starts with DOOMED write themselves (not those the
    middleware's batch of reads writes, with one COPY, after the answer)."""
    net = await create_network(spine.booking.http, hours=ALL_DAY)
    await key_everywhere(spine, net)
    for svc in spine.services.values():
        await note_writes(db, svc.schema)
    yield World(spine, db, net)


async def note_writes(db: asyncpg.Connection, schema: str) -> None:
    """Triggers that note, in `test_writes`, every row written to the service's tables (but
    NOT_THE_CHANGE) and every audit entry, each with its top-level transaction id
    (`txid_current()`: the same inside a savepoint); and the trail refusing the entries that
    requests whose correlation id starts with DOOMED write themselves (not those the
    middleware's batch of reads writes, with one COPY, after the answer)."""
    await db.execute(f"""
        CREATE TABLE "{schema}".test_writes (id bigserial PRIMARY KEY, tbl text NOT NULL,
                                             tx bigint NOT NULL, correlation_id text);
        CREATE FUNCTION "{schema}".test_note_write() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO "{schema}".test_writes (tbl, tx) VALUES (TG_TABLE_NAME, txid_current());
            RETURN NULL;
        END $$;
        CREATE FUNCTION "{schema}".test_doom_audit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.correlation_id LIKE '{DOOMED}%' AND NEW.outcome = 'allowed'
                    AND upper(ltrim(current_query())) NOT LIKE 'COPY%' THEN
                RAISE EXCEPTION 'the audit entry is refused (test)';
            END IF;
            INSERT INTO "{schema}".test_writes (tbl, tx, correlation_id)
            VALUES ('audit_log', txid_current(), NEW.correlation_id);
            RETURN NEW;
        END $$;
        CREATE TRIGGER test_doom_audit BEFORE INSERT ON "{schema}".audit_log
            FOR EACH ROW EXECUTE FUNCTION "{schema}".test_doom_audit();""")
    tables = await db.fetch(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition", schema)
    for (table,) in tables:
        if table not in NOT_THE_CHANGE:
            await db.execute(f"""
                CREATE TRIGGER test_note_write AFTER INSERT OR UPDATE OR DELETE
                ON "{schema}"."{table}" FOR EACH ROW
                EXECUTE FUNCTION "{schema}".test_note_write()""")


async def writes_since(db: asyncpg.Connection, schema: str, last: int) -> list[asyncpg.Record]:
    """The writes noted since `last` (id, table, top-level transaction, an entry's
    correlation id), but those of consumers: a transaction that marks an event processed is
    a consumer's, handling an event of an earlier request."""
    return await db.fetch(f"""
        SELECT id, tbl, tx, correlation_id FROM "{schema}".test_writes w
        WHERE id > $1 AND NOT EXISTS (SELECT 1 FROM "{schema}".test_writes c
                                      WHERE c.id > $1 AND c.tx = w.tx
                                        AND c.tbl = 'processed_events')
        ORDER BY id""", last)


async def settled(db: asyncpg.Connection, schema: str) -> int:
    """The last write noted once the service's background work (events of earlier requests,
    replay jobs) has left its tables alone for a while (the trail's own writes aside)."""
    last = await db.fetchval(f'SELECT coalesce(max(id), 0) FROM "{schema}".test_writes')
    for _ in range(100):
        await asyncio.sleep(0.3)
        now = await db.fetchval(f"""SELECT coalesce(max(id), 0) FROM "{schema}".test_writes
                                    WHERE tbl <> 'audit_log'""")
        if now <= last:
            return last
        last = await db.fetchval(f'SELECT coalesce(max(id), 0) FROM "{schema}".test_writes')
    raise AssertionError(f"{schema} never settled")


async def doomed(send: Send) -> str:
    """Send with an audit entry the database refuses: how it failed."""
    try:
        answered = await send({"X-Correlation-ID": f"{DOOMED}{str(uuid4())[9:]}"})
    except asyncpg.RaiseError as exc:
        return str(exc)
    return f"answered {answered.status_code}"


def test_every_mutating_route_has_a_case_or_a_listed_reason() -> None:
    apps = {"booking": booking_app(), "plans": plans_app(), "notifier": notifier_app()}
    routes = {(name, method, path) for name, app in apps.items()
              for method, path in mutating_routes(app)}
    covered = {(service, method, path) for service, method, path, _ in CASES}
    assert routes - covered - EXCEPTIONS.keys() == set(), "routes with no case and no reason"
    assert (covered | EXCEPTIONS.keys()) - routes == set(), "cases or reasons of no route"
    assert covered & EXCEPTIONS.keys() == set()


async def test_every_change_is_written_with_its_audit_entry_in_one_transaction(
        world: World) -> None:
    failures = []
    for service, method, path, prepare in CASES:
        svc = world.svc(service)
        send = await prepare(world)
        last = await settled(world.db, svc.schema)
        how = await doomed(send)
        left = [(w["tbl"], w["tx"]) for w in await writes_since(world.db, svc.schema, last)
                if w["tbl"] != "audit_log"]
        if how != "the audit entry is refused (test)" or left:
            failures.append((service, method, path, how, left))
            continue
        correlation = str(uuid4())
        answered = await send({"X-Correlation-ID": correlation})
        await svc.runtime.audit.flush(svc.runtime.db)
        noted = await writes_since(world.db, svc.schema, last)
        changes = {w["tx"] for w in noted if w["tbl"] != "audit_log"}
        entry_tx = [w["tx"] for w in noted if w["correlation_id"] == correlation]
        written = await world.db.fetch(
            f'SELECT action, outcome, status FROM "{svc.schema}".audit_log'
            " WHERE correlation_id = $1", correlation)
        action = mutating_routes(svc.app)[(method, path)]
        if [tuple(e) for e in written] != [(action, "allowed", answered.status_code)] \
                or answered.status_code >= 300:
            failures.append((service, method, path, answered.status_code,
                             [dict(e) for e in written]))
        elif len(entry_tx) != 1 or entry_tx[0] not in changes:
            failures.append((service, method, path, "the entry's transaction changed nothing",
                             entry_tx, sorted(changes)))
    assert failures == [], json.dumps(failures, indent=1, default=str)


# --- a refused or not-found change names the patient its body asked for --------------------

async def test_a_change_probing_another_networks_patient_names_the_probed_id_in_both_trails(
        booking: RunningService) -> None:
    ours = await create_network(booking.http, name="Ours")
    theirs = await create_network(booking.http, name="Theirs")
    target = theirs.patient["id"]
    probe = {"patient_id": target, "site_id": ours.site["id"], "session_type": "assessment",
             "starts_at": next_local(ours.site["timezone"], days=4)}
    probed = await booking.http.post("/bookings", headers=ours.headers, json=probe)
    assert probed.status_code == 404
    desk = await ok(booking.http.post("/api-keys", headers=ours.headers,
                                      json={"role": "read-only", "label": "desk"}))
    desk_key = {"X-API-Key": desk["api_key"]}
    assert (await booking.http.post("/bookings", headers=desk_key, json=probe)).status_code == 403
    # a refused change whose body names no patient, only a person: nothing of it is kept
    assert (await booking.http.post("/patients", headers=desk_key, json={
        "given_name": "Quinn", "family_name": "Probe", "phone": "604-555-0199",
        "sms_consent": True})).status_code == 403
    await flushed(booking)

    async def all_written() -> bool:  # (the worker may be writing a batch meanwhile)
        mine = await entries(booking, ours.headers)
        return len([e for e in mine if e["action"] in ("book_session", "register_patient")
                    and e["outcome"] != "allowed"]) == 3
    await eventually(all_written, timeout=5)

    # their privacy officer sees which of their patients was probed, and by which network
    seen = await entries(booking, theirs.headers, patient_id=target, action="book_session")
    assert [(e["outcome"], e["status"], e["clinic_id"], e["actor_clinic_id"], e["patient_ids"])
            for e in seen] == [("refused", 404, theirs.clinic["id"], ours.clinic["id"], [target])]
    # ours says what we were told, with the id we sent (nothing else of theirs)
    mine = await entries(booking, ours.headers)
    assert sorted((e["outcome"], e["status"], e["actor_label"], e["patient_ids"])
                  for e in mine if e["action"] == "book_session") == [
        ("not_found", 404, "initial admin key", [target]), ("refused", 403, "desk", [target])]
    assert [(e["outcome"], e["patient_ids"]) for e in mine if e["action"] == "register_patient"
            and e["actor_label"] == "desk"] == [("refused", [])]
    assert "Quinn" not in json.dumps(mine) and "0199" not in json.dumps(mine)
    assert theirs.clinic["id"] not in json.dumps(mine)
