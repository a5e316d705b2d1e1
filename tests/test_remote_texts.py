"""The texts of phone, video and home visits, through booking and the notifier: a remote
visit's texts carry the link or call-in number and never the site's address, in the
patient's own time zone; a home session's patient gets its prep text and its support person
their own text. The tests share their module's services: each has its own network and
numbers, and changes and reads only its own texts and appointments."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import eventually
from tests.helpers import add_patient, create_network, new_number
from tests.test_spine import listing

pytestmark = pytest.mark.shared_services

TZ = ZoneInfo("America/Vancouver")


def _at(days: int, hour: int) -> datetime:
    return (datetime.now(TZ) + timedelta(days=days)).replace(hour=hour, minute=0, second=0,
                                                              microsecond=0)


async def _sent(spine, net, patient_id: str, kind: str) -> dict:
    async def found():
        texts = await listing(spine.notifier.http, f"/patients/{patient_id}/texts", net.headers)
        return next((t for t in texts if t["kind"] == kind and t["status"] == "sent"), None)
    return await eventually(found, timeout=30)


async def test_a_video_visits_texts_carry_the_link_no_address_and_the_patients_own_time(spine, db):
    net = await create_network(spine.booking.http)
    r = await spine.booking.http.post("/clinic/remote-visits", headers=net.headers, json={
        "video_link_template": "https://meet.example.com/tc-{code}"})
    assert r.status_code == 200, r.text
    patient = await add_patient(spine.booking.http, net, given_name="Regina",
                                phone=new_number(), timezone="America/Regina")
    # 10:00 in Vancouver is 11:00 in Regina all year: neither changes its clocks (Vancouver
    # kept daylight time, UTC-7, from 2026; Regina keeps UTC-6)
    start = _at(3, 10)
    b = (await spine.booking.http.post("/bookings", headers=net.headers, json={
        "patient_id": patient["id"], "site_id": net.site["id"], "session_type": "assessment",
        "mode": "video", "starts_at": start.isoformat()})).json()
    link = f"https://meet.example.com/tc-{b['id'].replace('-', '')[:10]}"
    confirmation = await _sent(spine, net, patient["id"], "confirmation")
    assert f"By video: {link}" in confirmation["body"]
    assert "11:00 AM" in confirmation["body"] and "10:00 AM" not in confirmation["body"]
    assert "1 Main St" not in confirmation["body"] and " Main" not in confirmation["body"]
    schema = spine.notifier.schema
    # the day-of text says "today": make the appointment today, and the text due now
    await db.execute(f'UPDATE "{schema}".appointments SET starts_at = now() WHERE booking_id = $1',
                     UUID(b["id"]))
    await db.execute(f"UPDATE \"{schema}\".texts SET due_at = now() WHERE kind = 'day_of'"
                     " AND patient_id = $1", UUID(patient["id"]))
    day_of = await _sent(spine, net, patient["id"], "day_of")
    assert f"By video: {link}" in day_of["body"] and "today" in day_of["body"]
    assert "1 Main St" not in day_of["body"]
    bodies = [r["body"] for r in await db.fetch(f'SELECT body FROM "{schema}".recorded_sms'
                                                 " WHERE to_e164 = $1", patient["phone_e164"])]
    assert len(bodies) == 2 and not any("Main St" in body for body in bodies)


async def test_a_phone_visit_gives_the_number_to_call(spine):
    net = await create_network(spine.booking.http, language="es")
    r = await spine.booking.http.post("/bookings", headers=net.headers, json={
        "patient_id": net.patient["id"], "site_id": net.site["id"],
        "session_type": "consultation", "mode": "phone", "join_link": "604-555-0190",
        "starts_at": _at(2, 11).isoformat()})
    assert r.status_code == 201, r.text
    confirmation = await _sent(spine, net, net.patient["id"], "confirmation")
    assert "Por teléfono: llame al (604) 555-0190 a esa hora." in confirmation["body"]
    assert "1 Main St" not in confirmation["body"]
    assert confirmation["template_version"] == 0, "the built-in words"


async def test_a_home_sessions_patient_gets_its_prep_and_its_support_person_their_own_text(spine, db):
    net = await create_network(spine.booking.http)
    await spine.booking.http.post("/clinic/remote-visits", headers=net.headers, json={
        "video_link_template": "https://meet.example.com/tc-{code}"})
    start, supporter = _at(1, 10), new_number()  # tomorrow: the prep and support texts are due at once
    r = await spine.booking.http.post("/bookings", headers=net.headers, json={
        "patient_id": net.patient["id"], "site_id": net.site["id"],
        "session_type": "home_low_dose", "mode": "home", "starts_at": start.isoformat(),
        "support_person": {"name": "Sam Support", "phone": supporter, "sms_consent": True}})
    assert r.status_code == 201, r.text
    prep = await _sent(spine, net, net.patient["id"], "prep")
    assert prep["body"].startswith(
        "Test Clinic: your appointment at home is on ")
    for words in ("a quiet room, an eye mask, headphones and your own music",
                  "No driving for the rest of the day",
                  "your support person must be with you", "10:00 AM"):
        assert words in prep["body"], (words, prep["body"])
    assert prep["segments"] <= 3
    support = await _sent(spine, net, net.patient["id"], "support")
    schema = spine.notifier.schema
    to = await db.fetchval(f'SELECT to_e164 FROM "{schema}".recorded_sms WHERE text_id = $1',
                           support["id"])
    assert to == supporter, "to the support person, not the patient"
    assert "at home" in support["body"] and "10:00 AM" in support["body"]
    assert "do not let them drive" in support["body"] and "Pat" not in support["body"]
    kinds = {t["kind"] for t in await listing(
        spine.notifier.http, f"/patients/{net.patient['id']}/texts", net.headers)}
    assert "ride_reminder" not in kinds and "pickup" not in kinds
