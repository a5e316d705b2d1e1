"""Quiet hours per state/province and per site: resolved site > region > network > default,
when texts are planned and again when they are sent (real PostgreSQL and broker); the
dispatcher holds a text only within the day its words name, at literal boundary times."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import pytest

from services.notifier import handlers, policy
from services.notifier.dispatcher import Dispatcher
from services.notifier.policy import PolicyIn, QuietHoursIn
from services.notifier.schedule import QuietHours
from shared.events import Envelope
from shared.events.booking import PatientRegistered
from tests.conftest import eventually
from tests.helpers import EVERY_DAY, _ok, create_network, session_booked
from tests.test_notifier_claims import ANY_HOUR as ALWAYS
from tests.test_notifier_claims import (
    InstantSender,
    pool,  # noqa: F401 (a fixture)
)
from tests.test_spine import listing

pytestmark = pytest.mark.shared_services  # each test makes its own clinic network

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

    morning = datetime.combine(first_day, time(9), MIAMI)
    assert day_of["Miami"] == morning, "Florida's texts start at 09:00: later the same day"
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


VANCOUVER = ZoneInfo("America/Vancouver")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
"""Pacific time with clock changes: Vancouver kept daylight time from 2026 (tzdata 2026)."""


def vancouver(*when, fold: int = 0) -> datetime:
    return datetime(*when, tzinfo=VANCOUVER, fold=fold)


def los_angeles(*when, fold: int = 0) -> datetime:
    return datetime(*when, tzinfo=LOS_ANGELES, fold=fold)


async def text_due_now(pool, kind: str, starts_at: datetime, site_hours: tuple | None = None,
                       region_hours: tuple | None = None) -> int:
    """A text of `kind` about a dosing session at `starts_at` in its zone (a site in British
    Columbia; in California for Los Angeles), every other text of it cancelled, due by the
    database's clock, for a network whose site (or region) has `site_hours` (`region_hours`)
    as its quiet hours, or none (the service's default)."""
    patient, clinic = uuid4(), uuid4()
    registered = Envelope.new(PatientRegistered(phone_e164="+16045550199", sms_consent=True),
                              producer="booking", clinic_id=clinic, patient_id=patient)
    zone = str(starts_at.tzinfo)
    booked = session_booked(patient_id=patient, clinic_id=clinic, starts_at=starts_at,
                            ends_at=starts_at + timedelta(minutes=90), site_timezone=zone,
                            site_region="US-CA" if zone == "America/Los_Angeles" else "CA-BC")
    async with pool.acquire() as conn, conn.transaction():
        await handlers.on_patient_registered(conn, registered)
        await handlers.on_session_booked(conn, booked, quiet=ALWAYS, now=starts_at - timedelta(days=10))
        hours = {}
        if site_hours:
            hours["sites"] = {booked.payload.site_id: QuietHoursIn(
                quiet_hours_start=site_hours[0], quiet_hours_end=site_hours[1])}
        if region_hours:
            hours["regions"] = {"CA-BC": QuietHoursIn(
                quiet_hours_start=region_hours[0], quiet_hours_end=region_hours[1])}
        if hours:
            await policy.save(conn, clinic, PolicyIn(daily_cap=5, **hours))
        await conn.execute("UPDATE texts SET status = 'cancelled' WHERE booking_id = $1"
                           " AND kind <> $2", booked.payload.booking_id, kind)
        return await conn.fetchval("UPDATE texts SET due_at = now() - interval '1 second'"
                                   " WHERE booking_id = $1 AND kind = $2 RETURNING id",
                                   booked.payload.booking_id, kind)


async def dispatched_at(pool, text_id: int, clock: datetime, quiet: QuietHours = QuietHours()):
    """Dispatch the due texts as if it were `clock`; what became of the text."""
    sender = InstantSender()
    await Dispatcher(pool, sender, quiet=quiet, clock=lambda: clock.astimezone(UTC)).dispatch_once()
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT status, status_reason, due_at FROM texts WHERE id = $1",
                                  text_id)
    return row["status"], row["status_reason"], row["due_at"].astimezone(clock.tzinfo)


SESSION = vancouver(2027, 6, 20, 10, 0)


async def held_or_sent(pool, cases, quiet: QuietHours, site_hours=None) -> None:
    """Each (clock, expected): a confirmation due then is sent (expected None) or held until
    `expected`."""
    for clock, until in cases:
        text = await text_due_now(pool, "confirmation", SESSION, site_hours=site_hours)
        status, reason, due = await dispatched_at(pool, text, clock, quiet)
        if until is None:
            assert status == "sent", clock
        else:
            assert (status, reason, due) == ("pending", "held until quiet hours end", until), clock


async def test_the_dispatcher_sends_at_20_59_and_08_00_and_holds_at_21_00_and_07_59(pool):
    await held_or_sent(pool, [(vancouver(2027, 6, 10, 20, 59), None),
                              (vancouver(2027, 6, 10, 21, 0), vancouver(2027, 6, 11, 8, 0)),
                              (vancouver(2027, 6, 10, 7, 59), vancouver(2027, 6, 10, 8, 0)),
                              (vancouver(2027, 6, 10, 8, 0), None)], QuietHours())


async def test_the_dispatcher_keeps_a_sites_own_hours_18_59_and_09_00_allowed_19_00_and_08_59_not(pool):
    await held_or_sent(pool, [(vancouver(2027, 6, 10, 18, 59), None),
                              (vancouver(2027, 6, 10, 19, 0), vancouver(2027, 6, 11, 9, 0)),
                              (vancouver(2027, 6, 10, 8, 59), vancouver(2027, 6, 10, 9, 0)),
                              (vancouver(2027, 6, 10, 9, 0), None)], ALWAYS, site_hours=(19, 9))
    # a region's hours (20-9) follow the same rule
    text = await text_due_now(pool, "confirmation", SESSION, region_hours=(20, 9))
    assert (await dispatched_at(pool, text, vancouver(2027, 6, 10, 20, 0), quiet=ALWAYS))[2] == \
        vancouver(2027, 6, 11, 9, 0)


async def test_no_see_you_today_text_goes_out_the_evening_before_an_08_15_appointment(pool):
    appointment = vancouver(2027, 6, 11, 8, 15)
    for clock in (vancouver(2027, 6, 10, 20, 59), vancouver(2027, 6, 10, 21, 30)):
        text = await text_due_now(pool, "day_of", appointment)  # say, planned by the old rule
        status, reason, _ = await dispatched_at(pool, text, clock)
        assert (status, reason) == ("skipped", "quiet hours until it is too late to be useful")
    # for a 10:00 appointment the same text waits for 08:00 on the day, not sent the day before
    text = await text_due_now(pool, "day_of", vancouver(2027, 6, 11, 10, 0))
    assert await dispatched_at(pool, text, vancouver(2027, 6, 10, 20, 59)) == \
        ("pending", "held until the day it names", vancouver(2027, 6, 11, 8, 0))


async def test_a_day_bound_text_that_quiet_hours_would_push_to_the_next_day_is_skipped_not_held(pool):
    text = await text_due_now(pool, "fasting_reminder", vancouver(2027, 6, 11, 14, 0))
    status, reason, _ = await dispatched_at(pool, text, vancouver(2027, 6, 10, 21, 0))
    assert (status, reason) == ("skipped", "quiet hours until the day it names is over")
    text = await text_due_now(pool, "fasting_reminder", vancouver(2027, 6, 11, 14, 0),
                              site_hours=(17, 9))
    status, reason, _ = await dispatched_at(pool, text, vancouver(2027, 6, 10, 17, 0))
    assert (status, reason) == ("skipped", "quiet hours until the day it names is over")
    text = await text_due_now(pool, "fasting_reminder", vancouver(2027, 6, 11, 14, 0))
    assert (await dispatched_at(pool, text, vancouver(2027, 6, 10, 20, 59)))[0] == "sent"


async def test_on_the_dst_days_in_los_angeles_the_dispatcher_holds_until_08_00_local(pool):
    # 2027-03-14: clocks go from 02:00 PST to 03:00 PDT; 2027-11-07: from 02:00 PDT to 01:00 PST
    for clock, until in ((los_angeles(2027, 3, 14, 7, 59), datetime(2027, 3, 14, 15, 0, tzinfo=UTC)),
                         (los_angeles(2027, 3, 14, 1, 30), datetime(2027, 3, 14, 15, 0, tzinfo=UTC)),
                         (los_angeles(2027, 11, 7, 1, 30, fold=0), datetime(2027, 11, 7, 16, 0, tzinfo=UTC)),
                         (los_angeles(2027, 11, 7, 1, 30, fold=1), datetime(2027, 11, 7, 16, 0, tzinfo=UTC)),
                         (los_angeles(2027, 11, 7, 7, 59), datetime(2027, 11, 7, 16, 0, tzinfo=UTC))):
        text = await text_due_now(pool, "confirmation", los_angeles(2027, clock.month, 20, 10, 0))
        status, _reason, due = await dispatched_at(pool, text, clock)
        assert (status, due.astimezone(UTC)) == ("pending", until), clock
    for clock in (los_angeles(2027, 3, 14, 8, 0), los_angeles(2027, 11, 7, 20, 59)):
        text = await text_due_now(pool, "confirmation", los_angeles(2027, clock.month, 20, 10, 0))
        assert (await dispatched_at(pool, text, clock))[0] == "sent", clock
    # the day-of text of an 08:15 appointment on either day is skipped, never sent the day before
    for day in (los_angeles(2027, 3, 14, 8, 15), los_angeles(2027, 11, 7, 8, 15)):
        text = await text_due_now(pool, "day_of", day)
        clock = los_angeles(day.year, day.month, day.day - 1, 20, 59)
        assert (await dispatched_at(pool, text, clock))[0] == "skipped"
