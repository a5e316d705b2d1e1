"""The day sheet: a site's sessions of one local day by room, with what staff need at a glance,
the actions on them by role, at most 3 calls to the services per page, and a patient's
confirmation shown live on an open sheet."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest

from tests.console_helpers import console, console_overrides, csrf_of, module_console, own_console, sign_in_browser  # noqa: F401
from tests.helpers import add_patient, create_network, new_number
from tests.staff_helpers import add_person

pytestmark = pytest.mark.shared_services  # each test makes its own clinic network


async def _book(booking_http, net, patient_id, session_type, local_start: datetime) -> dict:
    r = await booking_http.post("/bookings", headers=net.headers, json={
        "patient_id": patient_id, "site_id": net.site["id"], "session_type": session_type,
        "starts_at": local_start.strftime("%Y-%m-%dT%H:%M:%S")})
    assert r.status_code == 201, r.text
    return r.json()


def _tomorrow(net) -> datetime:
    tz = ZoneInfo(net.site["timezone"])
    return datetime.now(tz).replace(hour=0, minute=0, second=0, microsecond=0,
                                    tzinfo=None) + timedelta(days=1)


async def test_the_day_sheet_shows_each_session_by_room_in_site_local_time_in_three_calls_or_fewer(console):
    http = console.spine.booking.http
    net = await create_network(http, rooms=2, providers=2)
    second = await add_patient(http, net, given_name="Robin", family_name="Quinn", phone="604-555-0178")
    day = _tomorrow(net)
    iv = await _book(http, net, net.patient["id"], "iv_infusion", day.replace(hour=9))
    await _book(http, net, second["id"], "assessment", day.replace(hour=9, minute=30))
    clinician = await add_person(http, net.headers, "clinician")
    async with console.browser() as browser:
        await sign_in_browser(console, browser, clinician)
        page = await browser.get(f"/day?site={net.site['id']}&date={day.date()}")
        assert page.status_code == 200
        assert int(page.headers["x-console-service-calls"]) <= 3
        html = page.text
        assert "Pat Test" in html and "Robin Quinn" in html
        assert "9:00\u202fAM–9:45\u202fAM" in html or "9:00 AM–9:45 AM" in html  # site-local, not UTC
        assert html.index("Room 1") < html.index("Room 2")
        assert "IV infusion" in html and "Assessment" in html
        # a clinician may check in and record rides, not cancel or reschedule
        assert f'/day/bookings/{iv["id"]}/check-in' in html
        assert f'/day/bookings/{iv["id"]}/dialog/ride' in html
        assert f'/day/bookings/{iv["id"]}/dialog/cancel' not in html

        csrf = csrf_of(html)
        checked = await browser.post(f"/day/bookings/{iv['id']}/check-in", headers={"HX-Request": "true"},
                                     data={"csrf": csrf, "site": net.site["id"], "date": str(day.date())})
        assert checked.status_code == 200
        assert int(checked.headers["x-console-service-calls"]) <= 3
        assert "Checked in." in checked.text
        row = re.search(rf'data-booking="{iv["id"]}".*?</tr>', checked.text, re.S).group(0)
        assert 'data-field="status">Checked in<' in row
        assert f'/day/bookings/{iv["id"]}/complete' in row
        refused = await browser.post(f"/day/bookings/{iv['id']}/cancel", headers={"HX-Request": "true"},
                                     data={"csrf": csrf, "site": net.site["id"], "date": str(day.date()),
                                           "reason": "x"})
        assert refused.status_code == 403
    booked = (await http.get(f"/bookings/{iv['id']}", headers=net.headers)).json()
    assert booked["status"] == "arrived"


async def test_a_french_person_sees_the_day_sheet_in_french_with_quebec_formats(console):
    http = console.spine.booking.http
    net = await create_network(http, timezone="America/Toronto")
    day = _tomorrow(net)
    await _book(http, net, net.patient["id"], "iv_infusion", day.replace(hour=14))
    person = await add_person(http, net.headers, "scheduler", language="fr")
    async with console.browser() as browser:
        await sign_in_browser(console, browser, person)
        page = await browser.get(f"/day?site={net.site['id']}&date={day.date()}")
        assert '<html lang="fr-CA">' in page.text
        assert "Feuille du jour" in page.text and "Perfusion IV" in page.text
        assert "14 h 00" in page.text
        assert "Feuille du jour : Main" in page.text
        assert ">Accueillir<" in page.text and ">Déplacer…<" in page.text and ">Annuler…<" in page.text


async def test_a_patients_reply_1_shows_confirmed_on_an_open_day_sheet_within_2_seconds(console):
    import time

    import httpx

    from tests.conftest import eventually
    from tests.console_helpers import served, signed_inbound

    http = console.spine.booking.http
    net = await create_network(http, patient={"phone": new_number()})  # its reply is the number's
    day = _tomorrow(net)
    booking = await _book(http, net, net.patient["id"], "iv_infusion", day.replace(hour=10))
    person = await add_person(http, net.headers, "read-only")

    async def notifier_knows():
        r = await console.spine.notifier.http.get(f"/patients/{net.patient['id']}/texts", headers=net.headers)
        return r.status_code == 200 and any(t["booking_id"] == booking["id"] for t in r.json())
    await eventually(notifier_knows)
    await asyncio.wait_for(console.app.state.hub.ready.wait(), 20)
    async with served(console.app) as url, httpx.AsyncClient(base_url=url, timeout=30) as browser:
        await sign_in_browser(console, browser, person)
        page = await browser.get(f"/day?site={net.site['id']}&date={day.date()}")
        assert "not yet" in page.text
        assert "/day/bookings/" not in page.text, "a read-only person sees no action"
        async with browser.stream("GET", f"/live/day?site={net.site['id']}&date={day.date()}") as live:
            assert live.headers["content-type"].startswith("text/event-stream")
            lines = live.aiter_lines()
            assert (await anext(lines)).startswith("retry:")
            sent = time.monotonic()
            assert await signed_inbound(console.spine.notifier, net.patient["phone_e164"], "1",
                                        f"SM{uuid4().hex}") == 200
            event = None
            while event is None:
                line = await asyncio.wait_for(anext(lines), 5)
                if line.startswith("event: confirmed-"):
                    event = line
            data = await anext(lines)
            took = time.monotonic() - sent
        assert event == f"event: confirmed-{booking['id']}"
        assert "confirmed" in data and "\n" not in data
        print(f"live confirmation after {took:.3f} s")
        assert took < 2.0, took
        again = await browser.get(f"/day?site={net.site['id']}&date={day.date()}")
        assert '<span class="chip ok">confirmed</span>' in again.text
