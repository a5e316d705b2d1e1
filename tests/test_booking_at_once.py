"""A session in clinic with its room and provider given is booked by one statement
(`store.book_at_once`): its `SessionBooked` event, built in SQL, reads as the Python model
makes it, and it refuses whatever booking refuses, writing nothing (real PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import pytest

from services.booking import rules, store
from services.booking.bookings import appointment_fields
from services.booking.model import Booking, Placement, SessionType
from shared.events import Envelope, parse_envelope
from shared.events.booking import RideContact, SessionBooked
from tests.helpers import add_patient, create_network
from tests.test_booking_rules import counts, next_local

pytestmark = pytest.mark.shared_services  # each test makes its own clinic networks, and
# counts only their bookings and events

TZ = "America/Vancouver"


def aware(local: str) -> datetime:
    """A site-local wall-clock time (as next_local gives it) with its UTC offset."""
    return datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(TZ))


async def at_once(booking, net, starts: datetime, *, patient: dict | None = None,
                  code: str = "iv_infusion", room: dict | None = None,
                  provider: dict | None = None, timezone: str = TZ,
                  stype: SessionType | None = None, event_id: UUID | None = None,
                  correlation_id: UUID | None = None) -> Booking | None:
    """store.book_at_once for the network's site, its times worked out as the service does
    (rules.span, from the site's zone and the type as booking_context reads them)."""
    clinic_id, site_id = UUID(net.clinic["id"]), UUID(net.site["id"])
    patient_id = UUID((patient or net.patient)["id"])
    if stype is None:
        async with booking.runtime.db.acquire() as conn:
            ctx = await store.booking_context(conn, clinic_id, site_id,
                                              UUID(net.patient["id"]), code)
        assert ctx is not None and ctx.stype is not None
        stype = ctx.stype
    when = rules.span(starts.astimezone(UTC), stype, timezone, datetime.now(UTC))
    return await store.book_at_once(
        booking.runtime.db, clinic_id, patient_id, site_id, timezone, stype, when,
        UUID((room or net.rooms[0])["id"]), UUID((provider or net.providers[0])["id"]),
        uuid4(), event_id or uuid4(), correlation_id, None)


async def test_one_statement_books_and_its_event_reads_as_the_python_model_makes_it(booking):
    net = await create_network(booking.http, site={"sms_name": "Main St"})
    patient = await add_patient(booking.http, net, given_name="Ride", language="fr",
                                ride_contact={"name": "Sam Driver", "phone": "604-555-0199",
                                              "sms_consent": True})
    starts = aware(next_local(TZ, days=4, hour=10))
    clinic_id, site_id = UUID(net.clinic["id"]), UUID(net.site["id"])
    room_id, provider_id = UUID(net.rooms[0]["id"]), UUID(net.providers[0]["id"])
    event_id, correlation_id = uuid4(), uuid4()
    b = await at_once(booking, net, starts, patient=patient, event_id=event_id,
                      correlation_id=correlation_id)
    assert b is not None, "booked by the one statement"
    assert (b.starts_at, b.ends_at, b.occupied_until) == (
        starts, starts + timedelta(minutes=45), starts + timedelta(minutes=90))
    assert (b.room_id, b.provider_id, b.mode, b.source, b.status, b.version) == (
        room_id, provider_id, "clinic", "staff", "booked", 1)
    assert (b.about.clinic_name, b.about.site_name, b.about.site_timezone) == (
        "Test Clinic", "Main", TZ)

    row = await booking.runtime.db.fetchrow("SELECT * FROM outbox WHERE event_id = $1", event_id)
    raw = json.loads(row["value"])
    assert set(raw) == set(Envelope.model_fields), "every envelope field, no other"
    assert set(raw["payload"]) == set(SessionBooked.model_fields), "every field, no other"
    event = parse_envelope(row["value"])
    python_made = SessionBooked(**appointment_fields(
        b.id, 1, None, site_id, "iv_infusion", True,
        Placement(b.starts_at, b.ends_at, b.occupied_until, room_id, provider_id), b.about))
    assert event.payload == python_made
    assert event.payload.ride_contact == RideContact(name="Sam Driver", phone_e164="+16045550199")
    assert event.payload.prep_items is not None and event.payload.prep_items.startswith("Masque")
    assert (event.payload.patient_language, event.payload.site_sms_name,
            event.payload.ends_at) == ("fr", "Main St", starts + timedelta(minutes=90))
    assert (event.event_id, event.producer, event.clinic_id, event.patient_id,
            event.correlation_id, event.causation_id) == (
        event_id, "booking", clinic_id, UUID(patient["id"]), correlation_id, None)
    assert (row["topic"], bytes(row["key"]), row["event_type"]) == (
        SessionBooked.topic, patient["id"].encode(), "SessionBooked")
    assert event.schema_version == SessionBooked.schema_version


async def test_a_booking_in_clinic_with_room_and_provider_says_the_same_through_the_api(booking):
    net = await create_network(booking.http)
    patient = await add_patient(booking.http, net, given_name="Plain", sms_consent=False)
    starts = aware(next_local(TZ, days=3, hour=14))
    seen = await booking.http.post("/bookings", headers=net.headers, json={  # site and type
        "patient_id": net.patient["id"], "site_id": net.site["id"], "session_type": "assessment",
        "starts_at": aware(next_local(TZ, days=3, hour=9)).isoformat()})
    assert seen.status_code == 201, seen.text
    r = await booking.http.post("/bookings", headers={**net.headers, "X-Correlation-ID": str(
        correlation := uuid4())}, json={
        "patient_id": patient["id"], "site_id": net.site["id"], "session_type": "assessment",
        "starts_at": starts.isoformat(), "room_id": net.rooms[0]["id"],
        "provider_id": net.providers[0]["id"]})
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["starts_at_local"], body["site_timezone"], body["room_id"], body["mode"]) == (
        starts.isoformat(), TZ, net.rooms[0]["id"], "clinic")
    [row] = await booking.runtime.db.fetch(
        "SELECT value FROM outbox WHERE key = $1 AND event_type = 'SessionBooked'",
        patient["id"].encode())
    event = parse_envelope(row["value"])
    assert (event.payload.booking_id, event.correlation_id, event.payload.ride_contact,
            event.payload.prep_items) == (UUID(body["id"]), correlation, None, None)
    entry = await booking.runtime.db.fetchrow(
        "SELECT * FROM audit_log WHERE correlation_id = $1", str(correlation))
    assert (entry["action"], entry["status"], entry["patient_ids"]) == (
        "book_session", 201, [UUID(patient["id"])])


async def test_one_statement_refuses_what_booking_refuses_and_writes_nothing(booking):
    net = await create_network(booking.http, providers=2, hours=[
        {"weekday": d, "opens": "09:00", "closes": "17:00"} for d in range(1, 8)])
    mornings = (await booking.http.post("/providers", headers=net.headers, json={
        "name": "Mornings", "hours": [{"site_id": net.site["id"], "weekday": d,
                                       "opens": "08:00", "closes": "12:00"}
                                      for d in range(1, 8)]})).json()
    no_consent = await add_patient(booking.http, net, given_name="Quiet", sms_consent=False)
    other = await create_network(booking.http, name="Other Network")
    await booking.http.post(f"/sites/{net.site['id']}/closures", headers=net.headers, json={
        "first_day": next_local(TZ, days=5)[:10], "last_day": next_local(TZ, days=5)[:10],
        "reason": "holiday"})
    day1 = aware(next_local(TZ, days=1, hour=10))
    refused = {
        "opening hours": await at_once(booking, net, aware(next_local(TZ, hour=16, minute=30))),
        "closed": await at_once(booking, net, aware(next_local(TZ, days=5))),
        "unknown patient": await at_once(booking, net, day1, patient=other.patient),
        "unknown room": await at_once(booking, net, day1, room=other.rooms[0]),
        "unknown provider": await at_once(booking, net, day1, provider=other.providers[0]),
        "provider not working": await at_once(booking, net, aware(next_local(TZ, hour=14)),
                                              provider=mornings),
        "no ride home": await at_once(booking, net, day1, patient=no_consent),
        "not in clinic": await at_once(booking, net, day1, code="home_low_dose"),
        "another zone": await at_once(booking, net, day1, timezone="America/Toronto"),
        "other durations": await at_once(booking, net, day1, stype=SessionType(
            "iv_infusion", True, 30, 45, None, ("clinic",))),
    }
    assert refused == dict.fromkeys(refused), "the statement refused each, writing nothing"
    assert await counts(booking, net, other) == (0, 0)
    # the first booking of a site and type goes the usual way, then they are seen
    base = {"patient_id": net.patient["id"], "site_id": net.site["id"],
            "session_type": "iv_infusion", "room_id": net.rooms[0]["id"],
            "provider_id": net.providers[0]["id"],
            "starts_at": aware(next_local(TZ, days=2, hour=10)).isoformat()}
    first = await booking.http.post("/bookings", headers=net.headers, json=base)
    assert first.status_code == 201, first.text
    cases = [
        ({"starts_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat()}, 422, "past"),
        ({"starts_at": aware(next_local(TZ, hour=16, minute=30)).isoformat()}, 422,
         "opening hours"),
        ({"starts_at": aware(next_local(TZ, days=5)).isoformat()}, 422, "closed"),
        ({"starts_at": aware(next_local(TZ, hour=23)).isoformat()}, 422, "same day"),
        ({"patient_id": other.patient["id"]}, 404, "unknown patient"),
        ({"room_id": other.rooms[0]["id"]}, 404, "unknown room"),
        ({"provider_id": other.providers[0]["id"]}, 404, "unknown provider"),
        ({"provider_id": mornings["id"], "starts_at": aware(next_local(TZ, hour=14)).isoformat()},
         422, "does not work"),
        ({"patient_id": no_consent["id"]}, 422, "ride home"),
        ({"patient_id": no_consent["id"], "session_type": "assessment"}, 409, "already booked"),
    ]
    for change, status, words in cases:
        r = await booking.http.post("/bookings", headers=net.headers, json={**base, **change})
        assert r.status_code == status, (change, r.text)
        assert words in r.json()["message"], (change, r.json())
    assert r.json()["conflicts_with"] == {"resource": "room", "booking_id": first.json()["id"]}
    assert await counts(booking, net, other) == (1, 1)
