"""Quiet hours per state/province and per site: resolved site > region > network > default,
when texts are planned and again when they are sent (real PostgreSQL and broker)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

from tests.conftest import eventually
from tests.helpers import EVERY_DAY, _ok, create_network
from tests.test_spine import listing

MIAMI = ZoneInfo("America/New_York")
ANY_HOUR = {"quiet_hours_start": 24, "quiet_hours_end": 0}


async def add_site(booking_http, net, name: str, region: str | None) -> dict:
    """A site in Florida's time zone with a room and a provider, in `region` (or none)."""
    site = await _ok(booking_http.post("/sites", headers=net.headers, json={
        "name": name, "address": f"{name} St", "phone": "+1 305 555 0101",
        "timezone": "America/New_York", "region": region, "hours": EVERY_DAY}))
    await _ok(booking_http.post("/rooms", headers=net.headers, json={"site_id": site["id"], "name": "R"}))
    await _ok(booking_http.post("/providers", headers=net.headers, json={
        "name": f"Provider at {name}", "hours": [{**h, "site_id": site["id"]} for h in EVERY_DAY]}))
    return site


async def set_policy(spine, net, **policy) -> dict:
    async def accepted():  # the network's key reaches the notifier as an event
        r = await spine.notifier.http.post("/policy", headers=net.headers, json=policy)
        return r.status_code == 200 and r.json()
    return await eventually(accepted)


async def book(spine, net, site: dict, starts_at: datetime) -> dict:
    return await _ok(spine.booking.http.post("/bookings", headers=net.headers, json={
        "patient_id": net.patient["id"], "site_id": site["id"], "session_type": "assessment",
        "starts_at": starts_at.isoformat()}))


async def texts_of_booking(spine, net, booking: dict, kind: str) -> list[dict]:
    texts = await listing(spine.notifier.http, f"/patients/{net.patient['id']}/texts", net.headers)
    return [t for t in texts if t["booking_id"] == booking["id"] and t["kind"] == kind]


async def test_a_states_quiet_hours_move_its_sites_reminders_unless_the_site_sets_its_own(spine):
    net = await create_network(spine.booking.http, timezone="America/New_York")
    miami = await add_site(spine.booking.http, net, "Miami", "US-FL")
    tampa = await add_site(spine.booking.http, net, "Tampa", "US-FL")
    elsewhere = await add_site(spine.booking.http, net, "Nowhere", None)
    shown = await set_policy(spine, net, daily_cap=5, quiet_hours_start=21, quiet_hours_end=8,
                             regions={"US-FL": {"quiet_hours_start": 20, "quiet_hours_end": 9}},
                             sites={tampa["id"]: {"quiet_hours_start": 22, "quiet_hours_end": 7}})
    assert shown["regions"] == {"US-FL": {"quiet_hours_start": 20, "quiet_hours_end": 9}}
    assert shown["sites"] == {tampa["id"]: {"quiet_hours_start": 22, "quiet_hours_end": 7}}
    assert (await spine.notifier.http.get("/policy", headers=net.headers)).json() == shown

    first_day = (datetime.now(MIAMI) + timedelta(days=5)).date()
    day_of = {}  # the day-of reminder is due 2 h before: 08:00 for a 10:00 appointment
    for i, site in enumerate((miami, tampa, elsewhere)):
        day = first_day + timedelta(days=i)
        booked = await book(spine, net, site, datetime(day.year, day.month, day.day, 10, tzinfo=MIAMI))
        [text] = await eventually(lambda: texts_of_booking(spine, net, booked, "day_of"))
        day_of[site["name"]] = datetime.fromisoformat(text["due_at"]).astimezone(MIAMI)

    evening_before = datetime.combine(first_day - timedelta(days=1), time(19, 59), MIAMI)
    assert day_of["Miami"] == evening_before, "Florida's texts start at 09:00: 08:00 is too early"
    assert day_of["Tampa"].time() == time(8), "the site's own hours (from 07:00) win over Florida's"
    assert day_of["Nowhere"].time() == time(8), "no region: the network's hours (from 08:00)"


def quiet_now(local: datetime) -> dict:
    """Quiet hours that hold this hour and the next at the site."""
    if local.hour <= 21:
        return {"quiet_hours_start": 24, "quiet_hours_end": local.hour + 2}
    return {"quiet_hours_start": 21, "quiet_hours_end": 1}


async def test_a_text_falling_due_in_its_sites_quiet_hours_is_held_until_they_end(spine, db):
    net = await create_network(spine.booking.http, timezone="America/New_York")
    miami = await add_site(spine.booking.http, net, "Miami", "US-FL")
    tampa = await add_site(spine.booking.http, net, "Tampa", "US-FL")
    quiet = quiet_now(datetime.now(MIAMI))
    await set_policy(spine, net, daily_cap=5, **ANY_HOUR, regions={"US-FL": quiet},
                     sites={tampa["id"]: ANY_HOUR})
    start = (datetime.now(MIAMI) + timedelta(days=4)).replace(hour=12, minute=0, second=0,
                                                               microsecond=0)
    in_miami = await book(spine, net, miami, start)
    in_tampa = await book(spine, net, tampa, start + timedelta(hours=3))

    async def confirmation(booking, status):
        texts = await texts_of_booking(spine, net, booking, "confirmation")
        return texts and texts[0]["status"] == status and texts[0]
    await eventually(lambda: confirmation(in_tampa, "sent"))
    planned = await eventually(lambda: confirmation(in_miami, "pending"))
    assert datetime.fromisoformat(planned["due_at"]).astimezone(MIAMI).hour == quiet["quiet_hours_end"]

    # it falls due now (say the policy changed after it was planned): the dispatcher holds it
    await db.execute(f'UPDATE "{spine.notifier.schema}".texts SET due_at = now() WHERE id = $1',
                     planned["id"])

    async def held():
        row = await db.fetchrow(f'SELECT status, status_reason, due_at, attempts'
                                f' FROM "{spine.notifier.schema}".texts WHERE id = $1', planned["id"])
        return row["attempts"] == 1 and row["status"] != "sending" and row  # claimed, then settled
    row = await eventually(held)
    assert row["status"] == "pending" and row["status_reason"] == "held until quiet hours end"
    assert row["due_at"].astimezone(MIAMI).hour == quiet["quiet_hours_end"]


async def test_quiet_hours_are_refused_for_an_unknown_region_or_when_no_hour_is_left(spine):
    net = await create_network(spine.booking.http)
    await set_policy(spine, net)
    for bad in ({"regions": {"Florida": {"quiet_hours_start": 20, "quiet_hours_end": 8}}},
                {"regions": {"US-FL": {"quiet_hours_start": 8, "quiet_hours_end": 20}}},
                {"quiet_hours_start": 8, "quiet_hours_end": 8}):
        r = await spine.notifier.http.post("/policy", headers=net.headers, json=bad)
        assert r.status_code == 422, bad
    r = await spine.booking.http.post("/sites", headers=net.headers, json={
        "name": "X", "address": "1 X St", "phone": "+1 305 555 0101",
        "timezone": "America/New_York", "region": "Florida"})
    assert r.status_code == 422
    site = await add_site(spine.booking.http, net, "Montreal", "CA-QC")
    assert site["region"] == "CA-QC"
    assert UUID(site["id"])


def test_quiet_hours_that_start_at_midnight_move_a_text_to_the_last_minute_of_the_day_before():
    from services.notifier.schedule import QuietHours

    quiet = QuietHours(start=24, end=10)  # texts only from 10:00 to midnight
    due = datetime(2026, 6, 10, 9, 0, tzinfo=MIAMI)
    moved = quiet.clamp(due, MIAMI, not_before=due - timedelta(days=1)).astimezone(MIAMI)
    assert moved == datetime(2026, 6, 9, 23, 59, tzinfo=MIAMI)
    assert quiet.earliest(due, MIAMI).astimezone(MIAMI) == datetime(2026, 6, 10, 10, tzinfo=MIAMI)
