"""Booking rules on real PostgreSQL: no double-booking under concurrency, opening and working
hours in site-local time with DST, clear errors that write nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from shared.events import parse_envelope
from tests.helpers import Network, add_patient, create_network

pytestmark = pytest.mark.shared_services  # each test makes its own clinic networks, and
# counts only their bookings and events

ALL_DAY = [{"weekday": d, "opens": "00:00", "closes": "23:59"} for d in range(1, 8)]


def next_local(tz: str, days: int = 3, hour: int = 10, minute: int = 0) -> str:
    day = datetime.now(ZoneInfo(tz)).date() + timedelta(days=days)
    return f"{day.isoformat()}T{hour:02d}:{minute:02d}:00"


async def counts(booking, *nets: Network) -> tuple[int, int]:
    """The bookings of `nets`, and the Session events about them."""
    db = booking.runtime.db
    clinics = [n.clinic["id"] for n in nets]
    events = await db.fetch("SELECT value FROM outbox WHERE event_type LIKE 'Session%'")
    return (await db.fetchval("SELECT count(*) FROM bookings WHERE clinic_id = ANY($1::uuid[])", clinics),
            sum(str(parse_envelope(e["value"]).clinic_id) in clinics for e in events))


@pytest.fixture
async def crowd(booking):
    """One site with 50 rooms, 50 providers and 50 patients."""
    net = await create_network(booking.http, rooms=50, providers=50)
    patients = [net.patient] + [await add_patient(booking.http, net, given_name=f"P{i}")
                                for i in range(49)]
    return net, patients


@pytest.mark.parametrize("shared", ["room", "provider", "patient"])
async def test_fifty_concurrent_overlapping_requests_create_exactly_one_booking(booking, crowd, shared):
    net, patients = crowd
    start = next_local("America/Vancouver", days=2, hour=11)

    def request(i: int) -> dict:
        return {
            "site_id": net.site["id"], "session_type": "iv_infusion",
            "starts_at": next_local("America/Vancouver", days=2, hour=11, minute=(i % 3) * 15)
            if shared != "patient" else start,
            "room_id": net.rooms[0 if shared == "room" else i]["id"],
            "provider_id": net.providers[0 if shared == "provider" else i]["id"],
            "patient_id": patients[0 if shared == "patient" else i]["id"],
        }

    responses = await asyncio.gather(*(booking.http.post("/bookings", json=request(i), headers=net.headers)
                                       for i in range(50)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 49
    winner = next(r.json() for r in responses if r.status_code == 201)
    for r in responses:
        if r.status_code == 409:
            body = r.json()
            assert body["conflicts_with"]["resource"] == shared
            assert body["conflicts_with"]["booking_id"] == winner["id"]
    assert await counts(booking, net) == (1, 1)


async def test_recovery_time_counts_as_occupied(booking):
    net = await create_network(booking.http)
    first = await booking.http.post("/bookings", headers=net.headers, json={
        "patient_id": net.patient["id"], "site_id": net.site["id"], "session_type": "iv_infusion",
        "starts_at": next_local("America/Vancouver", hour=10)})
    assert first.status_code == 201
    assert first.json()["occupied_until_local"][11:16] == "11:30"  # 45 min + 45 min recovery
    other = await add_patient(booking.http, net, given_name="Other")
    during_recovery = await booking.http.post("/bookings", headers=net.headers, json={
        "patient_id": other["id"], "site_id": net.site["id"], "session_type": "assessment",
        "starts_at": next_local("America/Vancouver", hour=11, minute=15)})
    assert during_recovery.status_code == 409
    assert during_recovery.json()["conflicts_with"]["resource"] == "room"
    after = await booking.http.post("/bookings", headers=net.headers, json={
        "patient_id": other["id"], "site_id": net.site["id"], "session_type": "assessment",
        "starts_at": next_local("America/Vancouver", hour=11, minute=30)})
    assert after.status_code == 201


@pytest.mark.parametrize("tz,spring,autumn", [
    ("America/Los_Angeles", "2027-03-14", "2027-11-07"),  # Vancouver no longer changes
    ("America/New_York", "2027-03-14", "2027-11-07"),
])
async def test_wall_clock_times_across_dst_changes_are_stored_in_utc_and_returned_local(
        booking, tz, spring, autumn):
    net = await create_network(booking.http, timezone=tz, hours=ALL_DAY, rooms=2, providers=2)
    zone = ZoneInfo(tz)

    async def book(local: str):
        return await booking.http.post("/bookings", headers=net.headers, json={
            "patient_id": net.patient["id"], "site_id": net.site["id"],
            "session_type": "assessment", "starts_at": local})

    for day in (spring, autumn):
        for offset_days in (-1, 0, 1):
            d = (datetime.fromisoformat(day) + timedelta(days=offset_days)).date()
            r = await book(f"{d}T10:00:00")
            assert r.status_code == 201, r.text
            body = r.json()
            expected = datetime(d.year, d.month, d.day, 10, tzinfo=zone)
            assert datetime.fromisoformat(body["starts_at"]) == expected.astimezone(UTC)
            assert body["starts_at_local"] == expected.isoformat()
    gap = await book(f"{spring}T02:30:00")
    assert gap.status_code == 422 and "does not exist" in gap.json()["message"]
    fold = await book(f"{autumn}T01:30:00")
    assert fold.status_code == 422 and "twice" in fold.json()["message"]
    explicit = await book(f"{autumn}T01:30:00-08:00" if "Los_Angeles" in tz else f"{autumn}T01:30:00-05:00")
    assert explicit.status_code == 201, "an explicit offset settles the ambiguity"


@pytest.mark.parametrize("tz,utc", [
    ("America/St_Thomas", "14:00"),
    ("America/Vancouver", "17:00"),  # British Columbia kept daylight time from 2026 (tzdata 2026)
])
async def test_a_zone_without_clock_changes_has_the_same_utc_time_all_year(booking, tz, utc):
    net = await create_network(booking.http, timezone=tz)
    for day in ("2027-01-12", "2027-07-13"):
        r = await booking.http.post("/bookings", headers=net.headers, json={
            "patient_id": net.patient["id"], "site_id": net.site["id"],
            "session_type": "assessment", "starts_at": f"{day}T10:00:00"})
        assert r.status_code == 201
        assert datetime.fromisoformat(r.json()["starts_at"]) == \
            datetime.fromisoformat(f"{day}T{utc}:00+00:00")


async def test_a_series_keeps_its_local_time_across_dst_and_is_all_or_nothing(booking):
    net = await create_network(booking.http, rooms=1, providers=1)
    weeks = [f"2027-03-{d:02d}T10:00:00" for d in (2, 9, 16, 23)]  # DST starts 2027-03-14
    r = await booking.http.post("/bookings/series", headers=net.headers, json={
        "patient_id": net.patient["id"], "site_id": net.site["id"], "session_type": "iv_infusion",
        "starts_at": weeks})
    assert r.status_code == 201, r.text
    series = r.json()
    assert [b["starts_at_local"][11:19] for b in series["bookings"]] == ["10:00:00"] * 4
    assert len({b["series_id"] for b in series["bookings"]}) == 1

    other = await add_patient(booking.http, net, given_name="Other")
    clash = await booking.http.post("/bookings/series", headers=net.headers, json={
        "patient_id": other["id"], "site_id": net.site["id"], "session_type": "iv_infusion",
        "starts_at": ["2027-03-30T10:00:00", "2027-03-16T10:30:00", "2027-04-06T10:00:00"]})
    assert clash.status_code == 409
    assert clash.json()["conflicts_with"]["session_index"] == 1
    assert await counts(booking, net) == (4, 4), "nothing of the failed series was written"

    cancel = await booking.http.post(f"/bookings/{series['bookings'][1]['id']}/cancel",
                                     headers=net.headers, json={"reason": "patient unwell"})
    assert cancel.status_code == 200
    rest = (await booking.http.get("/bookings", headers=net.headers,
                                   params={"patient_id": net.patient["id"]})).json()["items"]
    assert [b["status"] for b in rest] == ["booked", "cancelled", "booked", "booked"]


async def test_bad_requests_get_clear_errors_and_write_nothing(booking):
    net = await create_network(booking.http, hours=[{"weekday": d, "opens": "09:00", "closes": "17:00"}
                                                    for d in range(1, 8)])
    no_consent = await add_patient(booking.http, net, given_name="Quiet", sms_consent=False)
    other = await create_network(booking.http, name="Other Network")
    tomorrow = next_local("America/Vancouver", days=1, hour=10)
    base = {"patient_id": net.patient["id"], "site_id": net.site["id"],
            "session_type": "iv_infusion", "starts_at": tomorrow}
    await booking.http.post(f"/sites/{net.site['id']}/closures", headers=net.headers, json={
        "first_day": next_local("America/Vancouver", days=5)[:10],
        "last_day": next_local("America/Vancouver", days=5)[:10], "reason": "holiday"})
    cases = [
        ({"starts_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat()}, 422, "past"),
        ({"starts_at": next_local("America/Vancouver", hour=16, minute=30)}, 422, "opening hours"),
        ({"starts_at": next_local("America/Vancouver", days=5)}, 422, "closed"),
        ({"site_id": other.site["id"]}, 404, "unknown site"),
        ({"patient_id": other.patient["id"]}, 404, "unknown patient"),
        ({"room_id": other.rooms[0]["id"]}, 404, "unknown room"),
        ({"provider_id": other.providers[0]["id"]}, 404, "unknown provider"),
        ({"session_type": "reiki"}, 422, "unknown session type"),
        ({"patient_id": no_consent["id"]}, 422, "ride home"),
        ({"starts_at": "not a time"}, 422, "not valid"),
        ({"patient_id": "not-a-uuid"}, 422, "not valid"),
    ]
    for change, status, words in cases:
        r = await booking.http.post("/bookings", headers=net.headers, json={**base, **change})
        assert r.status_code == status, (change, r.text)
        assert words in r.json()["message"], (change, r.json())
    # room and provider given: the insert checks the site's rules itself (no placement read
    # first), and refuses the same way, writing nothing
    placed = {**base, "room_id": net.rooms[0]["id"], "provider_id": net.providers[0]["id"]}
    for change, status, words in [*cases[:3], *cases[5:7],
                                  ({"join_link": "https://meet.example.com/x",
                                    "starts_at": next_local("America/Vancouver", days=5)},
                                   422, "closed")]:
        r = await booking.http.post("/bookings", headers=net.headers, json={**placed, **change})
        assert r.status_code == status, (change, r.text)
        assert words in r.json()["message"], (change, r.json())
    r = await booking.http.post("/bookings", headers=net.headers, json={**base, "patient_id": "x"})
    assert r.json()["fields"][0]["path"] == "body.patient_id"
    assert "x" not in str(r.json()["fields"][0].get("input", "")), "values are not echoed"
    assert await counts(booking, net, other) == (0, 0)
    no_consent_ok = await booking.http.post("/bookings", headers=net.headers, json={
        **base, "patient_id": no_consent["id"], "session_type": "assessment"})
    assert no_consent_ok.status_code == 201, "non-dosing sessions need no ride"


async def test_a_provider_is_only_booked_when_working_at_that_site(booking):
    net = await create_network(booking.http, providers=0)
    provider = (await booking.http.post("/providers", headers=net.headers, json={
        "name": "Mornings", "hours": [{"site_id": net.site["id"], "weekday": d, "opens": "08:00",
                                       "closes": "12:00"} for d in range(1, 8)]})).json()
    ok = await booking.http.post("/bookings", headers=net.headers, json={
        "patient_id": net.patient["id"], "site_id": net.site["id"], "session_type": "assessment",
        "starts_at": next_local("America/Vancouver", hour=9)})
    assert ok.status_code == 201 and ok.json()["provider_id"] == provider["id"]
    late = await booking.http.post("/bookings", headers=net.headers, json={
        "patient_id": net.patient["id"], "site_id": net.site["id"], "session_type": "assessment",
        "starts_at": next_local("America/Vancouver", hour=13), "provider_id": provider["id"]})
    assert late.status_code == 422 and "does not work" in late.json()["message"]
    auto = await booking.http.post("/bookings", headers=net.headers, json={
        "patient_id": net.patient["id"], "site_id": net.site["id"], "session_type": "assessment",
        "starts_at": next_local("America/Vancouver", hour=13)})
    assert auto.status_code == 409 and auto.json()["conflicts_with"]["resource"] == "provider"


async def test_free_slots_leave_out_booked_and_closed_times(booking):
    net = await create_network(booking.http, hours=[{"weekday": d, "opens": "09:00", "closes": "13:00"}
                                                    for d in range(1, 8)])
    day = next_local("America/Vancouver", days=4)[:10]
    url = f"/sites/{net.site['id']}/availability"
    params = {"session_type": "iv_infusion", "from": day, "to": day, "step_minutes": 30}
    before = (await booking.http.get(url, headers=net.headers, params=params)).json()["slots"]
    assert [s["starts_at_local"][11:16] for s in before] == ["09:00", "09:30", "10:00", "10:30", "11:00", "11:30"]
    await booking.http.post("/bookings", headers=net.headers, json={
        "patient_id": net.patient["id"], "site_id": net.site["id"], "session_type": "iv_infusion",
        "starts_at": f"{day}T10:00:00"})
    after = (await booking.http.get(url, headers=net.headers, params=params)).json()["slots"]
    assert [s["starts_at_local"][11:16] for s in after] == ["11:30"]  # 90 min each
    slot = after[0]
    r = await booking.http.post("/bookings", headers=net.headers, json={
        "patient_id": (await add_patient(booking.http, net))["id"], "site_id": net.site["id"],
        "session_type": "iv_infusion", "starts_at": slot["starts_at"]})
    assert r.status_code == 201, "a slot from the search can be booked"
