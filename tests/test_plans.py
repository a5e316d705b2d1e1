"""Plans driven by booking events, on real PostgreSQL (and Kafka where the path crosses it).
The tests share their module's plans service: each has its own patients (each of its own
network) and reads only their rows and events."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer
from fhir.resources.R4B.careplan import CarePlan

from services.plans import handlers
from services.plans.timers import fire_due
from shared.consumer import BatchResult
from shared.db import create_pool
from shared.events import parse_envelope
from tests.conftest import eventually, service_settings, sharable, start_service, stop_service
from tests.plan_helpers import Patient, days_ago

pytestmark = pytest.mark.shared_services


@contextlib.asynccontextmanager
async def running_plans(infra, namespace):
    svc = await start_service("plans", service_settings("plans", infra, namespace))
    try:
        yield svc
    finally:
        await stop_service(svc)


plans, own_plans, module_plans = sharable("plans", running_plans)
"""The plans service: the test's own, or its module's (`shares_services`)."""


async def apply(plans, *envelopes) -> None:
    """Run booking events through the plans handlers, each in its own transaction (as the
    consumer would), skipping what the consumer's processed-events check would skip."""
    consumer = plans.runtime.consumers[0]
    async with plans.runtime.db.acquire() as conn:
        for env in envelopes:
            async with conn.transaction():
                await consumer._apply(conn, [(None, env)], BatchResult())


async def plan_events(plans, pat: Patient, *types) -> list:
    """The events plans published about `pat` (of `types`, if given)."""
    rows = await plans.runtime.db.fetch("SELECT value FROM outbox WHERE event_id IS NOT NULL ORDER BY id")
    envs = [parse_envelope(r["value"]) for r in rows]
    return [e for e in envs if e.patient_id == pat.patient_id and (not types or e.event_type in types)]


async def the_plan(plans, patient: Patient):
    return await plans.runtime.db.fetchrow("SELECT * FROM plans WHERE patient_id = $1", patient.patient_id)


async def test_a_full_iv_induction_moves_into_maintenance_from_booking_events_over_kafka(plans, infra):
    pat = Patient()
    stream = [pat.registered()]
    for i in range(6):
        stream += pat.attend("iv_infusion", days_ago(20 - 3 * i))
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers)
    await producer.start()
    try:
        for env in stream:
            await producer.send_and_wait(plans.runtime.settings.topic_prefix + "booking.events",
                                         env.to_bytes(), key=env.key)
    finally:
        await producer.stop()

    async def done():
        plan = await the_plan(plans, pat)
        return plan if plan and plan["sessions_completed"] == 6 else None

    plan = await eventually(done)
    assert plan["template"] == "iv_induction" and plan["phase"] == "maintenance"
    assert plan["next_due_from"] is not None  # maintenance every 28 days: the next window
    phases = [(e.payload.previous_phase, e.payload.phase) for e in await plan_events(plans, pat, "PlanPhaseChanged")]
    assert phases == [("assessment", "induction"), ("induction", "maintenance")]
    progressed = await plan_events(plans, pat, "PlanProgressed")
    assert [e.payload.sessions_completed for e in progressed][-1] == 6
    assert all(e.causation_id is not None for e in progressed)
    assert len(await plan_events(plans, pat, "PlanStarted")) == 1


async def test_the_esketamine_schedule_goes_through_its_stages_and_asks_for_rems_forms(plans):
    pat = Patient()
    stream = []
    for i in range(12):  # the last one today: its form is not overdue yet
        stream += pat.attend("esketamine_nasal", days_ago(60 - 5 * i) if i < 11 else days_ago(0.1))
    await apply(plans, *stream[:24])  # 8 sessions: weeks 1-4 done
    plan = await the_plan(plans, pat)
    assert plan["template"] == "esketamine_trd" and plan["phase"] == "induction"
    assert plan["sessions_completed"] == 8 and plan["sessions_target"] == 12
    await apply(plans, *stream[24:])
    plan = await the_plan(plans, pat)
    assert plan["phase"] == "maintenance"
    due = await plan_events(plans, pat, "RemsMonitoringFormDue")
    assert len(due) == 12 and len({e.payload.booking_id for e in due}) == 12

    auth = await _key(plans, pat)
    today = due[-1].payload.booking_id
    r = await plans.http.post(f"/plans/{plan['id']}/rems-forms/{today}/filed", headers=auth)
    assert r.status_code == 200 and r.json()["filed_at"]
    # the other forms' 7 days have passed (those sessions were weeks ago): they are overdue
    await plans.runtime.db.execute("UPDATE plan_timers SET due_at = now() WHERE kind = 'rems_overdue'"
                                   " AND plan_id = $1", plan["id"])
    while await fire_due(plans.runtime.db):
        pass
    overdue = await plan_events(plans, pat, "RemsMonitoringFormOverdue")
    assert {e.payload.booking_id for e in overdue} == {e.payload.booking_id for e in due} - {today}
    view = (await plans.http.get(f"/plans/{plan['id']}", headers=auth)).json()
    assert [f["booking_id"] for f in view["rems_forms"] if f["filed_at"]] == [str(today)]


async def test_kap_needs_an_integration_session_within_two_days_of_each_dosing(plans):
    pat = Patient()
    stream = []
    for i in range(3):
        stream += pat.attend("preparation", days_ago(40 - i), dosing=False)
    await apply(plans, *stream)
    dosing1 = pat.attend("oral_lozenge_kap", days_ago(30))
    await apply(plans, *dosing1)
    missing = await plan_events(plans, pat, "IntegrationSessionMissing")
    assert [e.payload.booking_id for e in missing] == [dosing1[0].payload.booking_id]

    _, integration = pat.book("integration", days_ago(19), dosing=False)
    dosing2 = pat.attend("oral_lozenge_kap", days_ago(20))
    await apply(plans, integration, *dosing2)
    assert len(await plan_events(plans, pat, "IntegrationSessionMissing")) == 1, "integration was booked"

    dosing3 = pat.attend("oral_lozenge_kap", days_ago(10))
    await apply(plans, *dosing3, pat.check_in(integration.payload.booking_id),
                pat.complete(integration.payload.booking_id))
    plan = await the_plan(plans, pat)
    assert plan["sessions_completed"] == 3 and plan["phase"] == "induction", "one integration only"
    await apply(plans, *pat.attend("integration", days_ago(9), dosing=False))
    plan = await the_plan(plans, pat)
    assert plan["phase"] == "completed"
    assert len(await plan_events(plans, pat, "PlanCompleted")) == 1


async def test_a_whole_induction_in_one_batch_announces_every_phase_in_order(plans):
    pat = Patient()
    stream = []
    for i in range(6):
        stream += pat.attend("iv_infusion", days_ago(20 - 3 * i))
    async with plans.runtime.db.acquire() as conn, conn.transaction():
        await handlers.on_booking_events(conn, stream)
    phases = [(e.payload.previous_phase, e.payload.phase) for e in await plan_events(plans, pat, "PlanPhaseChanged")]
    assert phases == [("assessment", "induction"), ("induction", "maintenance")]
    assert (await the_plan(plans, pat))["sessions_completed"] == 6


async def test_preparation_sessions_in_the_same_batch_as_the_first_dosing_join_the_new_plan(plans):
    pat = Patient()
    batch = []
    for i in range(3):
        batch += pat.attend("preparation", days_ago(20 - i), dosing=False)
    _, first_dosing = pat.book("oral_lozenge_kap", days_ago(-2))
    async with plans.runtime.db.acquire() as conn, conn.transaction():
        await handlers.on_booking_events(conn, [*batch, first_dosing])
    plan = await the_plan(plans, pat)
    sessions = await plans.runtime.db.fetch("SELECT session_type FROM plan_sessions WHERE plan_id = $1",
                                            plan["id"])
    assert sorted(s["session_type"] for s in sessions) == ["oral_lozenge_kap"] + ["preparation"] * 3


async def test_replayed_duplicated_and_reordered_streams_give_the_same_state(plans):
    now = datetime.now(UTC).replace(microsecond=0)

    def at(days: int) -> datetime:
        return now + timedelta(days=days)

    def history(pat: Patient) -> list:
        s = [pat.registered()]
        b1, e1 = pat.book("iv_infusion", at(-10))
        b2, e2 = pat.book("iv_infusion", at(-7))
        b3, e3 = pat.book("iv_infusion", at(3))
        s += [e1, e2, e3]
        s += [pat.reschedule(b3, at(4)), pat.check_in(b1), pat.complete(b1),
              pat.no_show(b2), pat.cancel(b3)]
        _b4, e = pat.book("iv_infusion", at(5))
        s.append(e)
        return s

    ordered, messy = Patient(), Patient()
    stream_a = history(ordered)
    stream_b = history(messy)
    await apply(plans, *stream_a)
    # the same events for the other patient: every one twice, each booking's events reversed
    # after the first, then the whole stream replayed
    shuffled = [stream_b[0], stream_b[1], *reversed(stream_b[2:]), *stream_b[2:]]
    await apply(plans, *(shuffled + shuffled), *stream_b)

    async def state(pat):
        plan = await the_plan(plans, pat)
        sessions = await plans.runtime.db.fetch(
            "SELECT status, starts_at FROM plan_sessions WHERE plan_id = $1 ORDER BY starts_at", plan["id"])
        return ({k: plan[k] for k in ("phase", "sessions_booked", "sessions_completed",
                                      "sessions_cancelled", "sessions_missed")},
                [(s["status"], s["starts_at"]) for s in sessions])

    # and the whole messy stream handed over as one batch, as the consumer does
    batched = Patient()
    stream_c = history(batched)
    shuffled_c = [stream_c[1], *reversed(stream_c[2:]), *stream_c[2:]]
    async with plans.runtime.db.acquire() as conn, conn.transaction():
        await handlers.on_booking_events(conn, shuffled_c + shuffled_c + stream_c[1:])

    a, b, c = await state(ordered), await state(messy), await state(batched)
    assert a == b == c
    assert a[0] == {"phase": "induction", "sessions_booked": 1, "sessions_completed": 1,
                    "sessions_cancelled": 1, "sessions_missed": 1}


async def test_events_for_unknown_patients_or_plans_are_handled_not_crashed_on(plans):
    pat = Patient()
    bid, booked = pat.book("assessment", days_ago(-2), dosing=False)  # no plan: not counted
    await apply(plans, booked, pat.cancel(bid), pat.no_show(bid))
    assert await the_plan(plans, pat) is None
    assert await plans.runtime.db.fetchval(  # none about this patient
        "SELECT count(*) FROM dead_letters WHERE position($1::bytea IN value) > 0",
        str(pat.patient_id).encode()) == 0


async def test_timers_fire_once_across_two_instances_and_after_a_restart(infra, namespace):
    settings = service_settings("plans", infra, namespace)
    a, b = await asyncio.gather(start_service("plans", settings), start_service("plans", settings))
    pats = [Patient() for _ in range(6)]
    try:
        for pat in pats:  # one session done 20 days ago: the next one is due, the gap too long
            await apply(a, *pat.attend("iv_infusion", days_ago(20)))

        async def all_fired():
            return await a.runtime.db.fetchval(
                "SELECT count(*) FILTER (WHERE fired_at IS NOT NULL) = 12 FROM plan_timers")
        await eventually(all_fired)
        fired_by = (a.runtime.db, b.runtime.db)
    finally:
        await stop_service(a)
        await stop_service(b)

    # with no instance running, timers fall due and wait
    pool = await create_pool(infra.database_url, settings.schema)
    late = Patient()
    try:
        async with pool.acquire() as conn:
            for env in late.attend("iv_infusion", days_ago(20)):
                async with conn.transaction():
                    await handlers.on_booking_event(conn, env)
        assert await pool.fetchval("SELECT count(*) FROM plan_timers WHERE fired_at IS NULL") == 2
        c = await start_service("plans", settings)
        try:
            async def late_fired():
                return await pool.fetchval("SELECT count(*) FROM plan_timers WHERE fired_at IS NULL") == 0
            await eventually(late_fired)
        finally:
            await stop_service(c)
        rows = await pool.fetch("SELECT value FROM outbox WHERE event_type IN "
                                "('PlanSessionDue', 'PlanAdherenceGap') ORDER BY id")
    finally:
        await pool.close()
    events = [parse_envelope(r["value"]) for r in rows]
    for kind in ("PlanSessionDue", "PlanAdherenceGap"):
        got = sorted(str(e.patient_id) for e in events if e.event_type == kind)
        assert got == sorted(str(p.patient_id) for p in [*pats, late]), kind
    assert all(e.payload.allowed_days == 10 for e in events if e.event_type == "PlanAdherenceGap")
    assert fired_by


async def _key(plans, pat: Patient) -> dict:
    key, issued = pat.key()
    await apply(plans, issued)
    return {"X-API-Key": key}


async def test_the_plan_api_starts_reads_lists_and_exports_fhir_within_one_network(plans):
    pat, other = Patient(), Patient()
    auth, other_auth = await _key(plans, pat), await _key(plans, other)
    unknown = await plans.http.post("/plans", headers=auth, json={
        "patient_id": str(pat.patient_id), "template": "esketamine_si"})
    assert unknown.status_code == 404, "the patient must be known from booking"
    await apply(plans, pat.registered())
    r = await plans.http.post("/plans", headers=auth, json={
        "patient_id": str(pat.patient_id), "template": "esketamine_si"})
    assert r.status_code == 201, r.text
    plan = r.json()
    assert plan["phase"] == "assessment" and plan["sessions_target"] == 8
    again = await plans.http.post("/plans", headers=auth, json={
        "patient_id": str(pat.patient_id), "template": "esketamine_trd"})
    assert again.status_code == 409
    await apply(plans, *pat.attend("esketamine_nasal", days_ago(1)))
    view = (await plans.http.get(f"/plans/{plan['id']}", headers=auth)).json()
    assert view["progress"] == "1 of 8 done" and view["phase"] == "induction"
    assert [s["status"] for s in view["timeline"]] == ["completed"]
    listed = (await plans.http.get(f"/patients/{pat.patient_id}/plans", headers=auth)).json()
    assert [p["id"] for p in listed] == [plan["id"]]
    fhir = await plans.http.get(f"/fhir/CarePlan/{plan['id']}", headers=auth)
    care_plan = CarePlan.model_validate(fhir.json())
    assert care_plan.status == "active" and care_plan.subject.reference == f"Patient/{pat.patient_id}"
    assert care_plan.activity[0].detail.status == "completed"
    for path in (f"/plans/{plan['id']}", f"/fhir/CarePlan/{plan['id']}"):
        assert (await plans.http.get(path, headers=other_auth)).status_code == 404
    assert (await plans.http.get(f"/patients/{pat.patient_id}/plans", headers=other_auth)).status_code == 404
    assert (await plans.http.get(f"/plans/{plan['id']}")).status_code == 401


async def test_a_clinic_can_turn_off_automatic_plans_and_use_its_own_template(plans):
    pat = Patient()
    auth = await _key(plans, pat)
    r = await plans.http.post("/settings", headers=auth, json={"auto_create_plans": False})
    assert r.status_code == 200
    await apply(plans, *pat.attend("iv_infusion", days_ago(3)))
    assert await the_plan(plans, pat) is None
    templates = (await plans.http.get("/plan-templates", headers=auth)).json()
    iv = next(t for t in templates if t["code"] == "iv_induction")["definition"]
    r = await plans.http.post("/plan-templates/iv_induction", headers=auth, json={
        **iv, "stages": [{"name": "induction", "sessions": 4, "within_days": 14}]})
    assert r.status_code == 201 and r.json()["version"] == 2
    await apply(plans, pat.registered())
    started = (await plans.http.post("/plans", headers=auth, json={
        "patient_id": str(pat.patient_id), "template": "iv_induction"})).json()
    assert started["sessions_target"] == 4 and started["template_version"] == 2
    bad = await plans.http.post("/plan-templates/iv_induction", headers=auth, json={"title": "x"})
    assert bad.status_code == 422
