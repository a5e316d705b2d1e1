"""Booking's side of opt-outs and rides: staff confirm a ride (a patient's free text no
longer does); a ride contact whose number texted STOP is no longer texted, with the reason
shown on the patient; START gives back only the consent STOP took."""

from __future__ import annotations

from uuid import UUID

import pytest
from aiokafka import AIOKafkaProducer

from shared.events import Envelope
from shared.events.booking import PatientContactChanged
from shared.events.notifier import PatientOptedIn, PatientOptedOut, RideContactOptedIn, RideContactOptedOut
from tests.conftest import eventually
from tests.helpers import add_patient, create_network
from tests.test_booking_api import book, outbox_events

pytestmark = pytest.mark.shared_services  # each test makes its own clinic network, and reads
# only its events, dead letters and processed events

SAM = {"name": "Sam", "phone": "604-555-0190", "sms_consent": True}


async def test_staff_with_a_care_role_confirm_a_ride_and_it_leaves_the_attention_list(booking):
    net = await create_network(booking.http)
    made = await book(booking, net)
    attention = (await booking.http.get("/bookings/attention", headers=net.headers)).json()
    assert [b["id"] for b in attention] == [made["id"]], "a dosing session without a ride"
    keys = {}
    for role in ("clinician", "read-only"):
        r = await booking.http.post("/api-keys", headers=net.headers,
                                    json={"role": role, "label": f"front desk {role}"})
        keys[role] = {"X-API-Key": r.json()["api_key"]}
    refused = await booking.http.post(f"/bookings/{made['id']}/ride", headers=keys["read-only"],
                                      json={"ride_status": "confirmed", "driver_name": "Sam"})
    assert refused.status_code == 403
    r = await booking.http.post(f"/bookings/{made['id']}/ride", headers=keys["clinician"],
                                json={"ride_status": "confirmed", "driver_name": "Sam"})
    assert r.status_code == 200 and r.json()["ride"] == {"status": "confirmed", "driver_name": "Sam"}
    assert (await booking.http.get("/bookings/attention", headers=net.headers)).json() == []


async def _publish(booking, net, patient, *payloads) -> list[UUID]:
    """The notifier's events about `patient`, published; their ids."""
    producer = AIOKafkaProducer(bootstrap_servers=booking.runtime.settings.kafka_bootstrap_servers)
    await producer.start()
    ids = []
    try:
        for payload in payloads:
            env = Envelope.new(payload, producer="notifier", clinic_id=net.clinic["id"],
                               patient_id=patient["id"])
            await producer.send_and_wait(booking.runtime.settings.topic_prefix + "notifier.events",
                                         env.to_bytes(), key=env.key)
            ids.append(env.event_id)
    finally:
        await producer.stop()
    return ids


async def test_a_ride_contact_who_texted_stop_is_no_longer_texted_and_staff_see_why(booking):
    net = await create_network(booking.http)
    patient = await add_patient(booking.http, net, given_name="Lee", phone="604-555-0181",
                                ride_contact=SAM)
    await _publish(booking, net, patient,
                   RideContactOptedOut(phone_e164="+16045550199"),  # not Sam's number: nothing
                   RideContactOptedOut(phone_e164="+16045550190"))

    async def withdrawn():
        p = (await booking.http.get(f"/patients/{patient['id']}", headers=net.headers)).json()
        return not p["ride_contact_consent"] and p
    p = await eventually(withdrawn)
    assert p["ride_contact_consent_source"] == "ride contact opted out by text (STOP)"
    assert p["sms_consent"], "the patient's own consent is theirs"
    changed = [e for e in await outbox_events(booking, net) if isinstance(e.payload, PatientContactChanged)]
    assert [(e.payload.sms_consent, e.payload.ride_contact) for e in changed] == [(True, None)]

    await _publish(booking, net, patient, RideContactOptedIn(phone_e164="+16045550190"))

    async def given_back():
        p = (await booking.http.get(f"/patients/{patient['id']}", headers=net.headers)).json()
        return p["ride_contact_consent"] and p
    p = await eventually(given_back)
    assert p["ride_contact_consent_source"] == "ride contact opted in by text (START)"
    changed = [e for e in await outbox_events(booking, net) if isinstance(e.payload, PatientContactChanged)]
    assert changed[-1].payload.ride_contact.phone_e164 == "+16045550190"
    assert await booking.runtime.db.fetchval(  # none about this patient
        "SELECT count(*) FROM dead_letters WHERE position($1::bytea IN value) > 0",
        patient["id"].encode()) == 0


async def test_start_from_a_ride_contact_never_gives_consent_they_did_not_give(booking):
    net = await create_network(booking.http)
    patient = await add_patient(booking.http, net, given_name="Lee", phone="604-555-0181",
                                ride_contact={**SAM, "sms_consent": False})
    published = await _publish(booking, net, patient, RideContactOptedIn(phone_e164="+16045550190"),
                               RideContactOptedOut(phone_e164="+16045550199"))

    async def both_handled():
        return await booking.runtime.db.fetchval(
            "SELECT count(*) = 2 FROM processed_events WHERE consumer = 'booking'"
            " AND event_id = ANY($1::uuid[])", published)
    await eventually(both_handled)
    p = (await booking.http.get(f"/patients/{patient['id']}", headers=net.headers)).json()
    assert (p["ride_contact_consent"], p["ride_contact_consent_source"]) == (False, None)


async def test_start_from_a_family_phone_gives_back_only_the_consent_stop_took(booking):
    net = await create_network(booking.http)  # its patient consented
    sibling = await add_patient(booking.http, net, given_name="Kim", sms_consent=False)
    await _publish(booking, net, net.patient, PatientOptedOut())
    await _publish(booking, net, sibling, PatientOptedIn())  # never consented: stays so

    async def patient(p):
        return (await booking.http.get(f"/patients/{p['id']}", headers=net.headers)).json()

    async def withdrawn():
        return not (await patient(net.patient))["sms_consent"]
    await eventually(withdrawn)
    await _publish(booking, net, net.patient, PatientOptedIn())

    async def given_back():
        p = await patient(net.patient)
        return p["sms_consent"] and p
    assert (await eventually(given_back))["sms_consent_source"] == "opted in by text (START)"
    assert (await patient(sibling))["sms_consent"] is False
