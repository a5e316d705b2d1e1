"""The spine end to end: an HTTP booking travels booking -> Kafka -> plans + notifier -> SMS,
and the booking, its plan progress and the patient's texts read back over HTTP. The tests
share their module's services: each has its own network, its patient a number of its own."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest

from shared.events import parse_envelope
from tests.conftest import eventually
from tests.helpers import create_network, new_number
from tests.test_booking_rules import next_local

pytestmark = pytest.mark.shared_services


async def test_a_booking_reaches_plan_progress_and_the_patients_texts(spine, db):
    net = await create_network(spine.booking.http, patient={"phone": new_number()})
    site, patient, auth = net.site, net.patient, net.headers
    starts = (datetime.now(ZoneInfo("America/Vancouver")) + timedelta(days=4)).replace(
        hour=10, minute=0, second=0, microsecond=0)
    resp = await spine.booking.http.post("/bookings", headers=auth, json={
        "patient_id": patient["id"], "site_id": site["id"], "session_type": "iv_infusion",
        "starts_at": starts.isoformat()})
    assert resp.status_code == 201, resp.text
    booking = resp.json()
    assert booking["status"] == "booked"
    assert booking["starts_at_local"] == starts.isoformat()
    fetched = await spine.booking.http.get(f"/bookings/{booking['id']}", headers=auth)
    assert fetched.json()["id"] == booking["id"]

    async def plan_with_booking():
        plans = await listing(spine.plans.http, f"/patients/{patient['id']}/plans", auth)
        return [p for p in plans if any(s["booking_id"] == booking["id"] for s in p["timeline"])]

    [plan] = await eventually(plan_with_booking)
    assert plan["template"] == "iv_induction"
    assert plan["sessions_booked"] == 1 and plan["sessions_target"] == 6
    assert plan["progress"] == "0 of 6 done"

    async def sent_confirmation():
        texts = await listing(spine.notifier.http, f"/patients/{patient['id']}/texts", auth)
        return [t for t in texts if t["kind"] == "confirmation" and t["status"] == "sent"] and texts

    texts = await eventually(sent_confirmation)
    kinds = {t["kind"]: t for t in texts}
    assert set(kinds) == {"confirmation", "prep", "ride_reminder", "fasting_reminder", "day_of"}
    assert all(t["booking_id"] == booking["id"] for t in texts)
    confirmation = kinds["confirmation"]["body"]
    assert "Test Clinic" in confirmation and "(604) 555-0101" in confirmation, "the site's phone"
    assert "10:00 AM" in confirmation, "the time is the site's local time"
    assert "STOP" in confirmation, "the first text says how to opt out"
    day_of_due = datetime.fromisoformat(kinds["day_of"]["due_at"])
    assert day_of_due == starts - timedelta(hours=2)

    recorded = await db.fetch(
        f'SELECT r.to_e164, r.body FROM "{spine.notifier.schema}".recorded_sms r'
        f' JOIN "{spine.notifier.schema}".texts t ON t.id = r.text_id'
        " WHERE t.patient_id = $1 ORDER BY r.id", UUID(patient["id"]))
    assert recorded[0]["to_e164"] == patient["phone_e164"]
    assert recorded[0]["body"] == confirmation

    # every event went through an outbox and reached Kafka
    for svc in (spine.booking, spine.plans, spine.notifier):
        unsent = await eventually(lambda: _all_sent(db, svc.schema))
        assert unsent


async def listing(http, path: str, headers) -> list:
    """A list endpoint's items; [] until the API key has reached that service."""
    r = await http.get(path, headers=headers)
    return r.json() if r.status_code == 200 else []


async def _all_sent(db, schema):
    return await db.fetchval(f'SELECT count(*) = 0 FROM "{schema}".outbox WHERE sent_at IS NULL')


async def test_a_booking_with_bad_input_is_refused_and_nothing_is_written(spine, db):
    net = await create_network(spine.booking.http)
    clinic, site, patient = net.clinic, net.site, net.patient
    past = (datetime.now(ZoneInfo("UTC")) - timedelta(hours=1)).isoformat()
    soon = next_local("America/Vancouver", days=30)
    cases = [
        ({"patient_id": patient["id"], "site_id": site["id"], "session_type": "iv_infusion",
          "starts_at": past}, 422),
        ({"patient_id": patient["id"], "site_id": clinic["id"], "session_type": "iv_infusion",
          "starts_at": soon}, 404),
        ({"patient_id": patient["id"], "site_id": site["id"], "session_type": "reiki",
          "starts_at": soon}, 422),
        ({"patient_id": patient["id"], "site_id": site["id"], "session_type": "iv_infusion",
          "starts_at": f"{next_spring_forward()}T02:30:00"}, 422),  # not in Vancouver (DST)
    ]
    for body, status in cases:
        resp = await spine.booking.http.post("/bookings", json=body, headers=net.headers)
        assert resp.status_code == status, (body, resp.text)
    bad_phone = await spine.booking.http.post("/patients", headers=net.headers, json={
        "given_name": "X", "family_name": "Y", "phone": "12345"})
    assert bad_phone.status_code == 422 and bad_phone.json()["field"] == "phone"
    assert "12345" not in bad_phone.text
    schema = spine.booking.schema
    assert await db.fetchval(f'SELECT count(*) FROM "{schema}".bookings WHERE clinic_id = $1',
                             UUID(clinic["id"])) == 0
    booked = await db.fetch(f"SELECT value FROM \"{schema}\".outbox WHERE event_type = 'SessionBooked'")
    assert [b for b in booked if str(parse_envelope(b["value"]).clinic_id) == clinic["id"]] == []


def next_spring_forward() -> date:
    """The next day clocks spring forward in the US and Canada (the second Sunday of March)."""
    today = date.today()
    for year in (today.year, today.year + 1):
        day = date(year, 3, 8) + timedelta(days=(6 - date(year, 3, 8).weekday()) % 7)
        if day > today:
            return day
    raise AssertionError("unreachable")
