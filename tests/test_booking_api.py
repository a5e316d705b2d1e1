"""The booking API as staff and other systems use it: tenants, roles, idempotency, lifecycle
events, waitlist, FHIR, and the patients' replies arriving from the notifier over Kafka."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaProducer
from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.bundle import Bundle

from shared.events import Envelope, parse_envelope
from shared.events.booking import (
    PatientCheckedIn,
    PatientNoShow,
    RideDetailsUpdated,
    SessionBooked,
    SessionCancelled,
    SessionCompleted,
    SessionRescheduled,
    WaitlistSlotOpened,
    WaitlistSlotTaken,
)
from shared.events.notifier import PatientConfirmed, PatientOptedOut, RescheduleRequested, RideConfirmed
from tests.conftest import eventually
from tests.helpers import add_patient, create_network
from tests.test_booking_rules import next_local

pytestmark = pytest.mark.shared_services  # each test makes its own clinic network, and reads
# only its events and dead letters


async def book(booking, net, patient=None, **fields):
    body = {"patient_id": (patient or net.patient)["id"], "site_id": net.site["id"],
            "session_type": "iv_infusion", "starts_at": next_local("America/Vancouver"), **fields}
    r = await booking.http.post("/bookings", headers=net.headers, json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def outbox_events(booking, net) -> list[Envelope]:
    """The events booking published about the network `net`."""
    rows = await booking.runtime.db.fetch(
        "SELECT value FROM outbox WHERE event_id IS NOT NULL ORDER BY id")
    return [e for e in map(parse_envelope, (r["value"] for r in rows))
            if str(e.clinic_id) == net.clinic["id"]]


async def test_a_key_never_sees_another_networks_data_on_any_endpoint(booking):
    a = await create_network(booking.http, name="Network A")
    b = await create_network(booking.http, name="Network B")
    a_booking = await book(booking, a)
    offer_id = uuid4()
    ids = {"site_id": a.site["id"], "booking_id": a_booking["id"], "patient_id": a.patient["id"],
           "offer_id": str(offer_id)}
    gets = ["/sites/{site_id}", "/patients/{patient_id}", "/bookings/{booking_id}",
            "/fhir/Appointment/{booking_id}",
            "/sites/{site_id}/availability?session_type=iv_infusion"]
    posts = [
        ("/bookings", {"patient_id": a.patient["id"], "site_id": a.site["id"],
                       "session_type": "assessment", "starts_at": next_local("America/Vancouver", hour=14)}),
        ("/bookings/series", {"patient_id": a.patient["id"], "site_id": a.site["id"],
                              "session_type": "assessment",
                              "starts_at": [next_local("America/Vancouver", hour=14)]}),
        ("/bookings/{booking_id}/reschedule", {"starts_at": next_local("America/Vancouver", hour=15)}),
        ("/bookings/{booking_id}/cancel", {"reason": "x"}),
        ("/bookings/{booking_id}/check-in", None),
        ("/bookings/{booking_id}/complete", None),
        ("/bookings/{booking_id}/no-show", None),
        ("/bookings/{booking_id}/ride", {"ride_status": "requested"}),
        ("/sites/{site_id}/closures", {"first_day": "2030-01-01", "last_day": "2030-01-01"}),
        ("/rooms", {"site_id": a.site["id"], "name": "sneaky"}),
        ("/providers", {"name": "sneaky", "hours": [{"site_id": a.site["id"], "weekday": 1,
                                                      "opens": "08:00", "closes": "09:00"}]}),
        ("/waitlist", {"patient_id": a.patient["id"], "site_id": a.site["id"],
                       "session_type": "iv_infusion", "window_start": "2030-01-01T00:00:00Z",
                       "window_end": "2030-01-02T00:00:00Z"}),
        ("/waitlist/offers/{offer_id}/accept", {"patient_id": a.patient["id"]}),
    ]
    for path in gets:
        r = await booking.http.get(path.format(**ids), headers=b.headers)
        assert r.status_code == 404, (path, r.status_code)
    for path, body in posts:
        r = await booking.http.post(path.format(**ids), headers=b.headers, json=body)
        assert r.status_code == 404, (path, r.status_code, r.text)
    for path in ["/sites", "/patients", "/bookings", "/waitlist", "/providers"]:
        items = (await booking.http.get(path, headers=b.headers)).json()["items"]
        assert all(i.get("clinic_id") == b.clinic["id"] for i in items), path
        assert all(i["id"] not in ids.values() for i in items), path
    search = await booking.http.get("/fhir/Appointment", headers=b.headers,
                                    params={"patient": a.patient["id"]})
    assert search.json()["total"] == 0
    assert (await booking.http.get("/bookings/" + a_booking["id"], headers=a.headers)).status_code == 200


async def test_roles_limit_what_a_key_may_do(booking):
    net = await create_network(booking.http)
    keys = {}
    for role in ("scheduler", "clinician", "ops", "read-only"):
        r = await booking.http.post("/api-keys", headers=net.headers, json={"role": role, "label": role})
        keys[role] = {"X-API-Key": r.json()["api_key"]}
    new_booking = {"patient_id": net.patient["id"], "site_id": net.site["id"],
                   "session_type": "assessment", "starts_at": next_local("America/Vancouver")}
    assert (await booking.http.post("/bookings", headers=keys["read-only"], json=new_booking)).status_code == 403
    assert (await booking.http.post("/bookings", headers=keys["clinician"], json=new_booking)).status_code == 403
    made = await booking.http.post("/bookings", headers=keys["scheduler"], json=new_booking)
    assert made.status_code == 201
    bid = made.json()["id"]
    assert (await booking.http.post(f"/bookings/{bid}/check-in", headers=keys["ops"])).status_code == 403
    assert (await booking.http.post(f"/bookings/{bid}/check-in", headers=keys["clinician"])).status_code == 200
    assert (await booking.http.get(f"/bookings/{bid}", headers=keys["read-only"])).status_code == 200
    assert (await booking.http.post("/rooms", headers=keys["scheduler"],
                                    json={"site_id": net.site["id"], "name": "x"})).status_code == 403
    assert (await booking.http.get("/bookings")).status_code == 401
    assert (await booking.http.get("/bookings", headers={"X-API-Key": "kcb_wrong"})).status_code == 401
    assert (await booking.http.post("/clinics", json={"name": "x", "phone": "1234"})).status_code == 401


async def test_a_replayed_post_with_the_same_idempotency_key_returns_the_first_response(booking):
    net = await create_network(booking.http)
    body = {"patient_id": net.patient["id"], "site_id": net.site["id"],
            "session_type": "iv_infusion", "starts_at": next_local("America/Vancouver")}
    headers = {**net.headers, "Idempotency-Key": f"req-{uuid4()}"}
    responses = await asyncio.gather(*(booking.http.post("/bookings", headers=headers, json=body)
                                       for _ in range(5)))
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in responses) == 4
    events = [e for e in await outbox_events(booking, net) if isinstance(e.payload, SessionBooked)]
    assert len(events) == 1
    other = await booking.http.post("/bookings", headers=headers, json={**body, "session_type": "assessment"})
    assert other.status_code == 422 and "different request" in other.json()["message"]
    cancel_headers = {**net.headers, "Idempotency-Key": f"cancel-{uuid4()}"}
    first = await booking.http.post(f"/bookings/{responses[0].json()['id']}/cancel",
                                    headers=cancel_headers, json={"reason": "moved away"})
    again = await booking.http.post(f"/bookings/{responses[0].json()['id']}/cancel",
                                    headers=cancel_headers, json={"reason": "moved away"})
    assert first.status_code == again.status_code == 200 and first.json() == again.json()


async def test_lists_page_with_a_cursor(booking):
    net = await create_network(booking.http)
    for i in range(4):
        await add_patient(booking.http, net, given_name=f"P{i}")
    seen, cursor = [], None
    while True:
        r = (await booking.http.get("/patients", headers=net.headers,
                                    params={"limit": 2, **({"cursor": cursor} if cursor else {})})).json()
        seen += [p["id"] for p in r["items"]]
        cursor = r["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5
    bad = await booking.http.get("/patients", headers=net.headers, params={"cursor": "garbage!"})
    assert bad.status_code == 422


async def test_each_change_of_a_booking_emits_its_event_with_what_consumers_need(booking):
    net = await create_network(booking.http, rooms=2)
    first = await book(booking, net)
    moved = await booking.http.post(f"/bookings/{first['id']}/reschedule", headers=net.headers,
                                    json={"starts_at": next_local("America/Vancouver", hour=13),
                                          "expected_version": 1})
    assert moved.status_code == 200 and moved.json()["version"] == 2
    stale = await booking.http.post(f"/bookings/{first['id']}/reschedule", headers=net.headers,
                                    json={"starts_at": next_local("America/Vancouver", hour=14),
                                          "expected_version": 1})
    assert stale.status_code == 409
    ride = await booking.http.post(f"/bookings/{first['id']}/ride", headers=net.headers,
                                   json={"ride_status": "confirmed", "driver_name": "Sam"})
    assert ride.json()["ride"] == {"status": "confirmed", "driver_name": "Sam"}
    await booking.http.post(f"/bookings/{first['id']}/check-in", headers=net.headers)
    early_done = await booking.http.post(f"/bookings/{first['id']}/no-show", headers=net.headers)
    assert early_done.status_code == 409
    await booking.http.post(f"/bookings/{first['id']}/complete", headers=net.headers)
    second = await book(booking, net, starts_at=next_local("America/Vancouver", days=4))
    await booking.http.post(f"/bookings/{second['id']}/cancel", headers=net.headers, json={"reason": "ill"})
    not_started = await booking.http.post(f"/bookings/{second['id']}/no-show", headers=net.headers)
    assert not_started.status_code == 409

    events = [e for e in await outbox_events(booking, net)
              if e.patient_id is not None and e.event_type != "PatientRegistered"]
    assert [type(e.payload) for e in events] == [
        SessionBooked, SessionRescheduled, RideDetailsUpdated, PatientCheckedIn, SessionCompleted,
        SessionBooked, SessionCancelled]
    booked, rescheduled = events[0].payload, events[1].payload
    assert booked.site_timezone == "America/Vancouver" and booked.is_dosing
    assert booked.fasting_rule == "solids_6h_clear_liquids_2h" and booked.patient_language == "en"
    assert booked.clinic_name == "Test Clinic" and booked.site_address == "1 Main St"
    assert rescheduled.previous_starts_at == booked.starts_at and rescheduled.version == 2
    assert rescheduled.starts_at == datetime.fromisoformat(moved.json()["starts_at"])
    assert events[6].payload.reason == "ill" and "admin" in events[6].payload.cancelled_by
    assert all(e.patient_id.hex == net.patient["id"].replace("-", "") for e in events)
    assert all(e.key == net.patient["id"].encode() for e in events)


async def test_a_no_show_is_recorded_once_the_session_has_started(booking):
    net = await create_network(booking.http)
    made = await book(booking, net)
    await booking.runtime.db.execute(  # let time pass: the session started 10 minutes ago
        "UPDATE bookings SET starts_at = now() - interval '10 minutes',"
        " ends_at = now() + interval '35 minutes', occupied_until = now() + interval '80 minutes'"
        " WHERE id = $1", made["id"])
    r = await booking.http.post(f"/bookings/{made['id']}/no-show", headers=net.headers)
    assert r.status_code == 200 and r.json()["status"] == "noshow"
    [event] = [e for e in await outbox_events(booking, net) if isinstance(e.payload, PatientNoShow)]
    assert str(event.payload.booking_id) == made["id"] and event.payload.version == 2
    again = await booking.http.post(f"/bookings/{made['id']}/no-show", headers=net.headers)
    assert again.status_code == 409


async def test_a_cancelled_slot_goes_to_the_first_waiting_patient_who_accepts(booking):
    net = await create_network(booking.http)
    slot = await book(booking, net, starts_at=next_local("America/Vancouver", days=6))
    waiting = [await add_patient(booking.http, net, given_name=f"W{i}", language=lang)
               for i, lang in enumerate(("fr", "es"))]
    start = datetime.fromisoformat(slot["starts_at"])
    for w in waiting:
        r = await booking.http.post("/waitlist", headers=net.headers, json={
            "patient_id": w["id"], "site_id": net.site["id"], "session_type": "iv_infusion",
            "window_start": (start - timedelta(days=1)).isoformat(),
            "window_end": (start + timedelta(days=1)).isoformat()})
        assert r.status_code == 201
    await booking.http.post(f"/bookings/{slot['id']}/cancel", headers=net.headers, json={"reason": "x"})
    opened = [e for e in await outbox_events(booking, net) if isinstance(e.payload, WaitlistSlotOpened)]
    assert {str(e.patient_id) for e in opened} == {w["id"] for w in waiting}
    assert {e.payload.patient_language for e in opened} == {"fr", "es"}
    offer = opened[0].payload.offer_id
    accepts = await asyncio.gather(*(booking.http.post(
        f"/waitlist/offers/{offer}/accept", headers=net.headers, json={"patient_id": w["id"]})
        for w in waiting))
    assert sorted(r.status_code for r in accepts) == [201, 409]
    winner = next(r.json() for r in accepts if r.status_code == 201)
    assert winner["starts_at"] == slot["starts_at"]
    taken = [e for e in await outbox_events(booking, net) if isinstance(e.payload, WaitlistSlotTaken)]
    assert [str(e.patient_id) for e in taken] == [w["id"] for w in waiting if w["id"] != winner["patient_id"]]


async def test_fhir_reads_are_valid_r4_appointments(booking):
    net = await create_network(booking.http)
    made = await book(booking, net)
    await book(booking, net, starts_at=next_local("America/Vancouver", days=10))
    r = await booking.http.get(f"/fhir/Appointment/{made['id']}", headers=net.headers)
    assert r.headers["content-type"].startswith("application/fhir+json")
    appointment = Appointment.model_validate(r.json())
    assert appointment.status == "booked" and appointment.minutesDuration == 90
    assert {p.actor.reference.split("/")[0] for p in appointment.participant} == \
        {"Patient", "Practitioner", "Location"}
    day = made["starts_at_local"][:10]
    search = await booking.http.get("/fhir/Appointment", headers=net.headers, params=[
        ("patient", f"Patient/{net.patient['id']}"), ("date", f"ge{day}"),
        ("date", f"lt{(datetime.fromisoformat(day) + timedelta(days=2)).date()}")])
    bundle = Bundle.model_validate(search.json())
    assert bundle.type == "searchset" and bundle.total == 1
    assert bundle.entry[0].resource.id == made["id"]


async def test_patients_replies_from_the_notifier_update_the_booking(booking, infra):
    net = await create_network(booking.http)
    made = await book(booking, net)
    pid, cid = net.patient["id"], net.clinic["id"]
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers)
    await producer.start()
    try:
        for payload in (PatientConfirmed(booking_id=made["id"]),
                        RideConfirmed(booking_id=made["id"], driver_name="Robin"),
                        RescheduleRequested(booking_id=made["id"]),
                        RideConfirmed(booking_id=uuid4()),  # unknown booking: ignored
                        PatientOptedOut()):
            env = Envelope.new(payload, producer="notifier", clinic_id=cid, patient_id=pid)
            await producer.send_and_wait(booking.runtime.settings.topic_prefix + "notifier.events",
                                         env.to_bytes(), key=env.key)
    finally:
        await producer.stop()

    async def updated():
        b = (await booking.http.get(f"/bookings/{made['id']}", headers=net.headers)).json()
        p = (await booking.http.get(f"/patients/{pid}", headers=net.headers)).json()
        return (b["confirmed_by_patient"] and b["ride"]["status"] == "confirmed"
                and b["reschedule_requested_at"] and not p["sms_consent"]) and (b, p)

    b, p = await eventually(updated)
    assert b["ride"]["driver_name"] == "Robin"
    assert p["sms_consent_source"] == "opted out by text (STOP)"
    attention = (await booking.http.get("/bookings/attention", headers=net.headers)).json()
    assert [a["id"] for a in attention] == [made["id"]]
    assert await booking.runtime.db.fetchval(  # none about this patient
        "SELECT count(*) FROM dead_letters WHERE position($1::bytea IN value) > 0", pid.encode()) == 0
