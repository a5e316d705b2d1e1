"""The audit trail (issue 20): an entry for every read and change of patient data through any
service's API, sign-ins and refusals included; changes recorded in their own transaction, reads
within a second; GET /audit for admins and privacy officers; export; cross-network refusals in
both networks' trails."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from tests.conftest import eventually
from tests.helpers import add_patient, create_network, key_everywhere
from tests.staff_helpers import add_person, bearer, sign_in

pytestmark = pytest.mark.shared_services  # each test makes its own clinic network

OPS_TOKEN = "audit-ops-token"
OPS = {"X-Ops-Token": OPS_TOKEN}


@pytest.fixture(scope="module")
def spine_overrides() -> dict[str, dict]:
    return {name: {"ops_token": OPS_TOKEN} for name in ("booking", "plans", "notifier")}


async def flushed(*services) -> None:
    """Write the reads each service keeps in memory (as its worker does every half second)."""
    for svc in services:
        await svc.runtime.audit.flush(svc.runtime.db)


async def entries(svc, headers: dict, **params) -> list[dict]:
    """Every entry GET /audit gives (all pages), newest first."""
    found, cursor = [], None
    while True:
        response = await svc.http.get("/audit", headers=headers,
                                      params={**params, "limit": 200, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        found += response.json()["items"]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return found


def one(found: list[dict], action: str, **fields) -> dict:
    """The one entry of `action` whose fields have these values."""
    matching = [e for e in found if e["action"] == action
                and all(e[k] == v for k, v in fields.items())]
    assert len(matching) == 1, (action, fields, [(e["action"], e["outcome"]) for e in found])
    return matching[0]


def tomorrow_at(hour: int) -> str:
    return (datetime.now(UTC) + timedelta(days=1)).strftime(f"%Y-%m-%dT{hour:02d}:00:00")


async def test_reads_of_patient_data_at_every_service_name_the_person_the_patient_and_the_request(spine):
    net = await create_network(spine.booking.http)
    await key_everywhere(spine, net)
    person = await add_person(spine.booking.http, net.headers, "scheduler")
    token = (await sign_in(spine.booking.http, person))["token"]
    patient = net.patient["id"]
    asked = {**bearer(token), "X-Correlation-ID": "6f1c2a43-2d0a-4a39-9a4f-2f3f5b0d8e11"}
    booked = await spine.booking.http.post("/bookings", headers=bearer(token), json={
        "patient_id": patient, "site_id": net.site["id"], "session_type": "assessment",
        "starts_at": tomorrow_at(10)})
    assert booked.status_code == 201, booked.text

    # plans and the notifier refuse the token (401) until the network's token key reached them
    async def known_at(svc, path: str) -> bool:
        return (await svc.http.get(path, headers=asked)).status_code == 200
    await eventually(lambda: known_at(spine.notifier, f"/patients/{patient}/texts"), timeout=30)
    await eventually(lambda: known_at(spine.plans, f"/patients/{patient}/plans"), timeout=30)
    for path in (f"/patients/{patient}", f"/bookings?patient_id={patient}",
                 f"/fhir/Appointment?patient=Patient/{patient}"):
        assert (await spine.booking.http.get(path, headers=asked)).status_code == 200
    await flushed(spine.booking, spine.plans, spine.notifier)

    person_id = UUID(person.id)
    booking_trail = await entries(spine.booking, net.headers, actor=person.id)
    read = one(booking_trail, "get_patient")
    assert read == {**read, "service": "booking", "clinic_id": net.clinic["id"],
                    "actor_clinic_id": net.clinic["id"], "actor_kind": "staff",
                    "staff_id": str(person_id), "actor_label": None, "role": "scheduler",
                    "resource": f"GET /patients/{patient}", "patient_ids": [patient],
                    "outcome": "allowed", "status": 200, "client": "127.0.0.1",
                    "correlation_id": "6f1c2a43-2d0a-4a39-9a4f-2f3f5b0d8e11"}
    assert one(booking_trail, "list_bookings")["patient_ids"] == [patient]
    assert one(booking_trail, "fhir_search")["patient_ids"] == [patient]
    assert one(booking_trail, "book_session")["patient_ids"] == [patient]
    assert one(booking_trail, "sign_in")["outcome"] == "allowed"
    # nothing of the patient but ids: no name, no number
    assert "Pat" not in json.dumps(booking_trail) and "6045550177" not in json.dumps(booking_trail)

    plans_read = one(await entries(spine.plans, net.headers), "patient_plans", outcome="allowed")
    assert (plans_read["staff_id"], plans_read["patient_ids"], plans_read["outcome"]) == \
        (str(person_id), [patient], "allowed")
    texts = [e for e in await entries(spine.notifier, net.headers, action="patient_texts")
             if e["outcome"] == "allowed"]
    assert texts and texts[0]["patient_ids"] == [patient]
    assert texts[0]["resource"] == f"GET /patients/{patient}/texts"


async def test_sign_ins_failures_keys_roles_policy_and_template_changes_are_recorded(spine):
    net = await create_network(spine.booking.http)
    await key_everywhere(spine, net)
    person = await add_person(spine.booking.http, net.headers, "scheduler", totp=False)
    await sign_in(spine.booking.http, person)
    failed = await spine.booking.http.post("/auth/sign-in", json={
        "email": person.email, "password": "not the password at all"})
    assert failed.status_code == 401
    issued = await spine.booking.http.post("/api-keys", headers=net.headers, json={
        "role": "read-only", "label": "front desk tablet"})
    assert issued.status_code == 201, issued.text
    key_id = issued.json()["id"]
    assert (await spine.booking.http.post(f"/api-keys/{key_id}/revoke", headers=net.headers)).status_code == 200
    assert (await spine.booking.http.post(f"/staff/{person.id}/role", headers=net.headers,
                                          json={"role": "clinician"})).status_code == 200
    assert (await spine.notifier.http.post("/policy", headers=net.headers, json={
        "quiet_hours_start": 21, "quiet_hours_end": 8})).status_code == 200
    templates = (await spine.plans.http.get("/plan-templates", headers=net.headers)).json()
    template = templates[0]
    assert (await spine.plans.http.post(f"/plan-templates/{template['code']}", headers=net.headers,
                                        json=template["definition"])).status_code == 201
    # a role that may not: refused, with who tried (once the notifier knows the network's
    # token key: until then the token is refused as unknown, 401)
    clinician = bearer((await sign_in(spine.booking.http, person))["token"])

    async def forbidden():
        return (await spine.notifier.http.post("/policy", headers=clinician, json={
            "quiet_hours_start": 22, "quiet_hours_end": 7})).status_code == 403
    await eventually(forbidden, timeout=30)
    await flushed(spine.booking, spine.plans, spine.notifier)

    trail = await entries(spine.booking, net.headers)
    assert [(e["staff_id"], e["role"]) for e in trail if e["action"] == "sign_in" and e["outcome"] == "allowed"] \
        == [(person.id, "clinician"), (person.id, "scheduler")]
    refused = one(trail, "sign_in", outcome="refused")
    assert (refused["staff_id"], refused["status"], refused["role"]) == (person.id, 401, "scheduler")
    assert one(trail, "issue_api_key")["actor_label"] == "initial admin key"
    assert one(trail, "revoke_api_key")["resource"] == f"POST /api-keys/{key_id}/revoke"
    assert one(trail, "change_role")["resource"] == f"POST /staff/{person.id}/role"
    notifier_trail = await entries(spine.notifier, net.headers)
    assert one(notifier_trail, "set_policy", outcome="allowed")["role"] == "admin"
    policy_refused = one(notifier_trail, "set_policy", status=403)
    assert (policy_refused["staff_id"], policy_refused["role"], policy_refused["status"]) == \
        (person.id, "clinician", 403)
    assert one(await entries(spine.plans, net.headers), "override_template")["resource"] == \
        f"POST /plan-templates/{template['code']}"


@pytest.mark.own_services  # reads the service's whole dead-letter trail
async def test_dead_letter_views_and_replays_are_recorded_with_the_ops_token_as_actor(spine, db):
    schema = spine.booking.schema
    letter = await db.fetchval(
        f'INSERT INTO "{schema}".dead_letters (consumer, topic, partition, "offset", key, value, error)'
        " VALUES ('booking', 'x.notifier.events', 0, 1, 'k', '{poison'::bytea, 'invalid event') RETURNING id")
    assert (await spine.booking.http.get("/ops/dlq", headers=OPS)).status_code == 200
    assert (await spine.booking.http.get(f"/ops/dlq/{letter}", headers=OPS)).status_code == 200
    replayed = await spine.booking.http.post(f"/ops/dlq/{letter}/replay", headers=OPS,
                                             json={"actor": "on-call"})
    assert replayed.status_code == 200, replayed.text
    assert (await spine.booking.http.get("/ops/dlq", headers={"X-Ops-Token": "wrong"})).status_code == 401
    await flushed(spine.booking)
    rows = await db.fetch(f'SELECT action, actor_kind, actor_label, outcome, resource FROM "{schema}".audit_log'
                          " WHERE resource LIKE '%/ops/dlq%' ORDER BY at")
    assert sorted((tuple(r) for r in rows), key=str) == sorted([
        ("list_dlq", "ops", "ops token", "allowed", "GET /ops/dlq"),
        ("show_dlq", "ops", "ops token", "allowed", f"GET /ops/dlq/{letter}"),
        ("replay", "ops", "ops token", "allowed", f"POST /ops/dlq/{letter}/replay"),
        ("list_dlq", "anonymous", None, "refused", "GET /ops/dlq")], key=str)


async def test_a_read_of_another_networks_patient_is_refused_in_that_networks_trail(booking):
    ours = await create_network(booking.http, name="Ours")
    theirs = await create_network(booking.http, name="Theirs")
    target = theirs.patient["id"]
    assert (await booking.http.get(f"/patients/{target}", headers=ours.headers)).status_code == 404
    unknown = str(uuid4())
    assert (await booking.http.get(f"/patients/{unknown}", headers=ours.headers)).status_code == 404
    await flushed(booking)

    # the other network's privacy officer sees who tried to read their patient
    seen = await entries(booking, theirs.headers, patient_id=target, action="get_patient")
    assert [(e["outcome"], e["status"], e["clinic_id"], e["actor_clinic_id"], e["actor_label"])
            for e in seen] == [("refused", 404, theirs.clinic["id"], ours.clinic["id"],
                                "initial admin key")]
    # our own trail says what we were told, as for an id that does not exist: nothing of theirs
    mine = await entries(booking, ours.headers, action="get_patient")
    assert sorted((e["outcome"], e["clinic_id"], e["patient_ids"][0] == target) for e in mine) == [
        ("not_found", ours.clinic["id"], False), ("not_found", ours.clinic["id"], True)]
    assert theirs.clinic["id"] not in json.dumps(mine)


async def test_a_change_is_in_the_trail_with_its_answer_and_a_failed_one_after_it(booking, db):
    net = await create_network(booking.http)
    body = {"patient_id": net.patient["id"], "site_id": net.site["id"], "session_type": "assessment",
            "starts_at": tomorrow_at(11)}
    booked = await booking.http.post("/bookings", headers=net.headers, json=body)
    assert booked.status_code == 201
    # no flush: written in the booking's own transaction
    clinic = UUID(net.clinic["id"])
    row = await db.fetchrow(f'SELECT outcome, patient_ids FROM "{booking.schema}".audit_log'
                            " WHERE action = 'book_session' AND clinic_id = $1", clinic)
    assert (row["outcome"], row["patient_ids"]) == ("allowed", [UUID(net.patient["id"])])
    clash = await booking.http.post("/bookings", headers=net.headers, json=body)
    assert clash.status_code == 409
    await flushed(booking)
    outcomes = [r["outcome"] for r in await db.fetch(
        f'SELECT outcome FROM "{booking.schema}".audit_log WHERE action = $1 AND clinic_id = $2'
        " ORDER BY id", "book_session", clinic)]
    assert outcomes == ["allowed", "failed"]


async def test_reads_reach_the_table_within_a_second_without_being_asked(booking, db):
    net = await create_network(booking.http)
    started = datetime.now(UTC)
    assert (await booking.http.get("/patients", headers=net.headers)).status_code == 200

    async def written():
        return await db.fetchval(f'SELECT at FROM "{booking.schema}".audit_log WHERE action = $1'
                                 " AND clinic_id = $2", "list_patients", UUID(net.clinic["id"]))
    at = await eventually(written, timeout=1.0, interval=0.05)
    assert at >= started


async def test_only_admins_and_privacy_officers_read_the_trail(booking):
    net = await create_network(booking.http)
    officer = await add_person(booking.http, net.headers, "privacy")
    officer_token = (await sign_in(booking.http, officer))["token"]
    scheduler = await booking.http.post("/api-keys", headers=net.headers,
                                        json={"role": "scheduler", "label": "desk"})
    desk = {"X-API-Key": scheduler.json()["api_key"]}
    assert (await booking.http.get("/audit", headers=bearer(officer_token))).status_code == 200
    assert (await booking.http.get(f"/patients/{net.patient['id']}",
                                   headers=bearer(officer_token))).status_code == 403
    assert (await booking.http.get("/audit", headers=desk)).status_code == 403


async def test_the_trail_filters_by_patient_actor_action_and_time_and_pages_with_a_cursor(booking):
    net = await create_network(booking.http)
    other = await add_patient(booking.http, net, given_name="Sam")
    before = datetime.now(UTC)
    for _ in range(3):
        assert (await booking.http.get(f"/patients/{net.patient['id']}", headers=net.headers)).status_code == 200
    assert (await booking.http.get(f"/patients/{other['id']}", headers=net.headers)).status_code == 200
    await flushed(booking)
    after = datetime.now(UTC)

    by_patient = await entries(booking, net.headers, patient_id=net.patient["id"], action="get_patient")
    assert len(by_patient) == 3
    first = await booking.http.get("/audit", headers=net.headers, params={
        "patient_id": net.patient["id"], "action": "get_patient", "limit": 2})
    second = await booking.http.get("/audit", headers=net.headers, params={
        "patient_id": net.patient["id"], "action": "get_patient", "limit": 2,
        "cursor": first.json()["next_cursor"]})
    ids = [e["id"] for e in first.json()["items"] + second.json()["items"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 3
    assert second.json()["next_cursor"] is None
    assert len(await entries(booking, net.headers, actor="initial admin key", action="get_patient",
                             **{"from": before.isoformat(), "to": after.isoformat()})) == 4
    assert await entries(booking, net.headers, actor="nobody", action="get_patient") == []
    assert await entries(booking, net.headers, action="get_patient", **{"to": before.isoformat()}) == []
    assert (await booking.http.get("/audit", headers=net.headers,
                                   params={"action": "Robert'); DROP"})).status_code == 422


async def test_an_export_for_a_period_as_csv_or_json_lines_is_itself_recorded(booking):
    net = await create_network(booking.http)
    assert (await booking.http.get(f"/patients/{net.patient['id']}", headers=net.headers)).status_code == 200
    await flushed(booking)
    period = {"from": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
              "to": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}
    lines = await booking.http.get("/audit/export", headers=net.headers, params={**period, "format": "jsonl"})
    assert lines.status_code == 200 and lines.headers["content-type"].startswith("application/x-ndjson")
    exported = [json.loads(line) for line in lines.text.splitlines()]
    assert [e["action"] for e in exported if e["action"] == "get_patient"] == ["get_patient"]
    table = await booking.http.get("/audit/export", headers=net.headers, params={**period, "format": "csv"})
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert [r["patient_ids"] for r in rows if r["action"] == "get_patient"] == [net.patient["id"]]
    assert (await booking.http.get("/audit/export", headers=net.headers, params={
        "from": period["to"], "to": period["from"]})).status_code == 422
    await flushed(booking)
    exports = await entries(booking, net.headers, action="export_audit")
    assert [(e["outcome"], e["patient_ids"]) for e in exports] == [
        ("failed", []), ("allowed", []), ("allowed", [])]
