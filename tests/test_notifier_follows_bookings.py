"""The notifier follows each booking through the whole system: a moved appointment's texts
quote the new time, a cancelled one gets no more texts, an opted-out patient none at all.
The tests share their module's services: each network's patients have numbers of their own (a
cap, an opt-out, a text is a number's too), and each test reads only its patients' rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import pytest
from aiokafka import AIOKafkaProducer

from shared.events import Envelope
from shared.events.notifier import PatientOptedOut
from tests.conftest import eventually
from tests.helpers import Network, new_number
from tests.helpers import create_network as create_any_network
from tests.test_spine import listing

pytestmark = pytest.mark.shared_services

ANY_HOUR = {"quiet_hours_start": 24, "quiet_hours_end": 0}  # tests run at any hour


async def create_network(booking_http, **fields) -> Network:
    """A network whose patient has a number no other test has."""
    return await create_any_network(booking_http, patient={"phone": new_number()}, **fields)


async def texts_of(spine, net, booking_id=None) -> list[dict]:
    texts = await listing(spine.notifier.http, f"/patients/{net.patient['id']}/texts", net.headers)
    return [t for t in texts if booking_id is None or t["booking_id"] == booking_id]


async def test_a_moved_then_cancelled_booking_never_leaves_a_stale_text(spine, db):
    net = await create_network(spine.booking.http)
    tz = ZoneInfo("America/Vancouver")
    first = (datetime.now(tz) + timedelta(days=6)).replace(hour=10, minute=0, second=0, microsecond=0)
    booked = (await spine.booking.http.post("/bookings", headers=net.headers, json={
        "patient_id": net.patient["id"], "site_id": net.site["id"], "session_type": "iv_infusion",
        "starts_at": first.isoformat()})).json()
    bid = booked["id"]

    async def confirmation_sent(version):
        texts = await texts_of(spine, net, bid)
        sent = [t for t in texts if t["kind"] == "confirmation" and t["status"] == "sent"]
        return len(sent) >= version and texts

    await eventually(lambda: confirmation_sent(1))
    moved_to = first + timedelta(days=1, hours=3)
    r = await spine.booking.http.post(f"/bookings/{bid}/reschedule", headers=net.headers,
                                      json={"starts_at": moved_to.isoformat()})
    assert r.status_code == 200
    texts = await eventually(lambda: confirmation_sent(2))
    pending = [t for t in texts if t["status"] == "pending"]
    assert pending and all(datetime.fromisoformat(t["valid_until"]) > first for t in pending), \
        "only texts for the new time are pending"
    day_of = next(t for t in pending if t["kind"] == "day_of")
    assert datetime.fromisoformat(day_of["due_at"]) == moved_to - timedelta(hours=2)
    moved = [t for t in texts if t["status_reason"] == "appointment moved"]
    assert {t["kind"] for t in moved} == {"prep", "ride_reminder", "fasting_reminder", "day_of"}
    latest_confirmation = [t for t in texts if t["kind"] == "confirmation"][-1]["body"]
    assert "1:00 PM" in latest_confirmation, "the new confirmation quotes the new time"

    await spine.booking.http.post(f"/bookings/{bid}/cancel", headers=net.headers, json={"reason": "ill"})

    async def nothing_pending():
        texts = await texts_of(spine, net, bid)
        return texts and not any(t["status"] == "pending" for t in texts) and texts

    texts = await eventually(nothing_pending)
    assert any(t["status_reason"] == "appointment cancelled" for t in texts)
    bodies = [r["body"] for r in await db.fetch(
        f'SELECT body FROM "{spine.notifier.schema}".recorded_sms WHERE to_e164 = $1 ORDER BY id',
        net.patient["phone_e164"])]
    assert len(bodies) == 2 and "10:00 AM" in bodies[0] and "1:00 PM" in bodies[1]


async def test_an_opted_out_patient_gets_no_texts(spine):
    net = await create_network(spine.booking.http)
    producer = AIOKafkaProducer(bootstrap_servers=spine.booking.runtime.settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        env = Envelope.new(PatientOptedOut(), producer="notifier", clinic_id=net.clinic["id"],
                           patient_id=net.patient["id"])
        await producer.send_and_wait(spine.topic_prefix + "notifier.events", env.to_bytes(), key=env.key)
    finally:
        await producer.stop()

    async def consent_off():
        async with spine.notifier.runtime.db.acquire() as conn:
            return await conn.fetchval("SELECT NOT sms_consent FROM contacts WHERE patient_id = $1",
                                       UUID(net.patient["id"]))
    await eventually(consent_off)
    r = await spine.booking.http.post("/bookings", headers=net.headers, json={
        "patient_id": net.patient["id"], "site_id": net.site["id"], "session_type": "assessment",
        "starts_at": (datetime.now(ZoneInfo("America/Vancouver")) + timedelta(days=3)).replace(
            hour=11, minute=0, second=0, microsecond=0).isoformat()})
    assert r.status_code == 201

    async def confirmation_skipped():
        texts = await texts_of(spine, net)
        return [t for t in texts if t["kind"] == "confirmation" and t["status"] not in ("pending", "sending")]

    [confirmation] = await eventually(confirmation_skipped)
    assert confirmation["status"] == "skipped"
    assert confirmation["status_reason"] == "patient has not consented to texts"


async def test_the_ride_reminder_goes_only_to_patients_whose_ride_is_not_arranged(spine, db):
    start = (datetime.now(ZoneInfo("America/Vancouver")) + timedelta(days=5)).replace(
        hour=10, minute=0, second=0, microsecond=0)
    arranged = await create_network(spine.booking.http, name="A")
    not_yet = await create_network(spine.booking.http, name="B")
    bookings = {}
    for net in (arranged, not_yet):
        r = await spine.booking.http.post("/bookings", headers=net.headers, json={
            "patient_id": net.patient["id"], "site_id": net.site["id"],
            "session_type": "iv_infusion", "starts_at": start.isoformat()})
        bookings[net.clinic["name"]] = r.json()
    await spine.booking.http.post(f"/bookings/{bookings['A']['id']}/ride", headers=arranged.headers,
                                  json={"ride_status": "confirmed", "driver_name": "Sam"})
    schema = spine.notifier.schema

    async def ride_known():
        return await db.fetchval(f'SELECT ride_status FROM "{schema}".appointments WHERE booking_id = $1',
                                 UUID(bookings["A"]["id"])) == "confirmed"
    await eventually(ride_known)
    patients = [UUID(net.patient["id"]) for net in (arranged, not_yet)]
    await db.execute(f"UPDATE \"{schema}\".texts SET due_at = now() WHERE kind = 'ride_reminder'"
                     " AND patient_id = ANY($1)", patients)

    async def reminders():
        rows = await db.fetch(f"SELECT patient_id, status, status_reason FROM \"{schema}\".texts"
                              " WHERE kind = 'ride_reminder' AND status NOT IN ('pending', 'sending')"
                              " AND patient_id = ANY($1)", patients)
        return len(rows) == 2 and {str(r["patient_id"]): r for r in rows}

    got = await eventually(reminders)
    assert got[arranged.patient["id"]]["status"] == "skipped"
    assert got[arranged.patient["id"]]["status_reason"] == "ride already arranged"
    assert got[not_yet.patient["id"]]["status"] == "sent"


async def test_the_driver_gets_the_pickup_time_even_after_the_patient_checked_in(spine, db):
    net = await create_network(spine.booking.http)
    driver = new_number()
    patient = (await spine.booking.http.post("/patients", headers=net.headers, json={
        "given_name": "Ann", "family_name": "Lee", "phone": new_number(), "sms_consent": True,
        "ride_contact": {"name": "Sam Lee", "phone": driver, "sms_consent": True}})).json()
    start = (datetime.now(ZoneInfo("America/Vancouver")) + timedelta(days=4)).replace(
        hour=10, minute=0, second=0, microsecond=0)
    booking = (await spine.booking.http.post("/bookings", headers=net.headers, json={
        "patient_id": patient["id"], "site_id": net.site["id"], "session_type": "iv_infusion",
        "starts_at": start.isoformat()})).json()
    schema = spine.notifier.schema

    async def pickup():
        return await db.fetchrow(f"SELECT * FROM \"{schema}\".texts WHERE kind = 'pickup'"
                                 " AND patient_id = $1", UUID(patient["id"]))
    planned = await eventually(pickup)
    assert planned["due_at"] == start + timedelta(minutes=90 - 30)  # 30 min before recovery ends
    await spine.booking.http.post(f"/bookings/{booking['id']}/check-in", headers=net.headers)

    async def checked_in():
        return await db.fetchval(f"SELECT status = 'arrived' FROM \"{schema}\".appointments"
                                 " WHERE booking_id = $1", UUID(booking["id"]))
    await eventually(checked_in)
    assert (await pickup())["status"] == "pending", "the pickup text survives the check-in"
    await db.execute(f"UPDATE \"{schema}\".texts SET due_at = now() WHERE kind = 'pickup'"
                     " AND patient_id = $1", UUID(patient["id"]))
    # it says "today", so it goes only on the appointment's day: make that today
    await db.execute(f"UPDATE \"{schema}\".appointments SET starts_at = now() WHERE booking_id = $1",
                     UUID(booking["id"]))

    async def sent():
        row = await pickup()
        return row["status"] == "sent" and row
    await eventually(sent)
    [recorded] = await db.fetch(f"SELECT r.to_e164, r.body FROM \"{schema}\".recorded_sms r"
                                f" JOIN \"{schema}\".texts t ON t.id = r.text_id WHERE t.kind = 'pickup'"
                                " AND t.patient_id = $1", UUID(patient["id"]))
    assert recorded["to_e164"] == driver, "to the driver, not the patient"
    assert "11:30 AM" in recorded["body"] and "Ann" not in recorded["body"]
    assert "STOP" in recorded["body"]


async def test_a_no_show_and_a_due_session_get_a_follow_up_text_but_rems_forms_stay_with_staff(spine, db):
    from shared.events.plans import PlanSessionDue, RemsMonitoringFormOverdue

    net = await create_network(spine.booking.http)

    async def roomy_caps():  # everything happens today here: let the caps allow it
        r = await spine.notifier.http.post("/policy", headers=net.headers, json={
            "daily_cap": 5, "weekly_cap": 10, **ANY_HOUR})
        return r.status_code == 200
    await eventually(roomy_caps)
    start = (datetime.now(ZoneInfo("America/Vancouver")) + timedelta(days=3)).replace(
        hour=10, minute=0, second=0, microsecond=0)
    booking = (await spine.booking.http.post("/bookings", headers=net.headers, json={
        "patient_id": net.patient["id"], "site_id": net.site["id"], "session_type": "assessment",
        "starts_at": start.isoformat()})).json()
    await eventually(lambda: texts_of(spine, net, booking["id"]))
    await spine.booking.runtime.db.execute(  # time passes: the session started an hour ago
        "UPDATE bookings SET starts_at = now() - interval '1 hour', ends_at = now(),"
        " occupied_until = now() WHERE id = $1", UUID(booking["id"]))
    r = await spine.booking.http.post(f"/bookings/{booking['id']}/no-show", headers=net.headers)
    assert r.status_code == 200

    producer = AIOKafkaProducer(bootstrap_servers=spine.booking.runtime.settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for payload in (PlanSessionDue(plan_id=uuid4(), due_from=datetime.now(UTC),
                                       due_by=datetime.now(UTC) + timedelta(days=3)),
                        RemsMonitoringFormOverdue(plan_id=uuid4(), booking_id=uuid4(),
                                                  due_at=datetime.now(UTC))):
            env = Envelope.new(payload, producer="plans", clinic_id=net.clinic["id"],
                               patient_id=net.patient["id"])
            await producer.send_and_wait(spine.topic_prefix + "plans.events", env.to_bytes(), key=env.key)
    finally:
        await producer.stop()

    async def follow_ups_sent():
        texts = await texts_of(spine, net)
        done = {t["kind"]: t for t in texts if t["kind"] in ("missed", "session_due")
                and t["status"] not in ("pending", "sending")}
        return len(done) == 2 and done

    done = await eventually(follow_ups_sent)
    assert done["missed"]["status"] == "sent" and "missed you" in done["missed"]["body"]
    assert done["session_due"]["status"] == "sent" and "next appointment" in done["session_due"]["body"]
    kinds = {t["kind"] for t in await texts_of(spine, net)}
    assert not any("rems" in k or "form" in k for k in kinds), "REMS forms are staff business"


async def publish_plan_event(spine, net, payload) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=spine.booking.runtime.settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        env = Envelope.new(payload, producer="plans", clinic_id=net.clinic["id"],
                           patient_id=net.patient["id"])
        await producer.send_and_wait(spine.topic_prefix + "plans.events", env.to_bytes(), key=env.key)
    finally:
        await producer.stop()


async def test_the_daily_cap_holds_back_non_critical_texts_and_a_clinic_can_turn_kinds_off(spine):
    from shared.events.plans import IntegrationSessionMissing, PlanSessionDue

    net = await create_network(spine.booking.http)
    start = (datetime.now(ZoneInfo("America/Vancouver")) + timedelta(days=3)).replace(
        hour=10, minute=0, second=0, microsecond=0)
    await spine.booking.http.post("/bookings", headers=net.headers, json={
        "patient_id": net.patient["id"], "site_id": net.site["id"], "session_type": "assessment",
        "starts_at": start.isoformat()})

    async def confirmation_sent():
        return [t for t in await texts_of(spine, net) if t["kind"] == "confirmation" and t["status"] == "sent"]
    await eventually(confirmation_sent)
    await publish_plan_event(spine, net, PlanSessionDue(
        plan_id=uuid4(), due_from=datetime.now(UTC), due_by=datetime.now(UTC) + timedelta(days=3)))

    async def due_done():
        return [t for t in await texts_of(spine, net)
                if t["kind"] == "session_due" and t["status"] not in ("pending", "sending")]
    [due] = await eventually(due_done)
    assert due["status"] == "skipped" and due["status_reason"].startswith("cap reached (1 today")

    r = await spine.notifier.http.post("/policy", headers=net.headers, json={
        "daily_cap": 5, "disabled_kinds": ["follow_up_due"], **ANY_HOUR})
    assert r.status_code == 200 and r.json()["disabled_kinds"] == ["follow_up_due"]
    bad = await spine.notifier.http.post("/policy", headers=net.headers, json={"disabled_kinds": ["spam"]})
    assert bad.status_code == 422
    await publish_plan_event(spine, net, IntegrationSessionMissing(
        plan_id=uuid4(), booking_id=uuid4(), within_days=2))
    await publish_plan_event(spine, net, PlanSessionDue(
        plan_id=uuid4(), due_from=datetime.now(UTC), due_by=datetime.now(UTC) + timedelta(days=4)))

    async def second_due_sent():
        return [t for t in await texts_of(spine, net) if t["kind"] == "session_due" and t["status"] == "sent"]
    await eventually(second_due_sent)
    assert not [t for t in await texts_of(spine, net) if t["kind"] == "follow_up_due"], "turned off"
