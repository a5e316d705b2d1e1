"""The console's other pages: the week calendar and booking an induction series for a new
patient, the patient page with their texts, the attention inbox, network settings for admins
(adding a person), each in at most 3 calls; a cross-network id is a 404 on every page."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import eventually
from tests.console_helpers import console, console_overrides, csrf_of, module_console, own_console, sign_in_browser  # noqa: F401
from tests.helpers import create_network, new_number
from tests.staff_helpers import add_person

pytestmark = pytest.mark.shared_services  # each test makes its own clinic network


def _calls(response) -> int:
    return int(response.headers["x-console-service-calls"])


async def test_a_scheduler_books_an_induction_series_for_a_new_patient_and_sees_the_texts(console):
    http = console.spine.booking.http
    net = await create_network(http, rooms=2, providers=2)
    scheduler = await add_person(http, net.headers, "scheduler")
    tz = ZoneInfo(net.site["timezone"])
    start = (datetime.now(tz) + timedelta(days=2)).date()
    async with console.browser() as browser:
        csrf = await sign_in_browser(console, browser, scheduler)
        week = await browser.get(f"/week?site={net.site['id']}&date={start}&session_type=iv_infusion")
        assert week.status_code == 200 and _calls(week) <= 3
        at = f"{start}T10:00"
        assert f'data-slot="{at}"' in week.text
        form = await browser.get(f"/week/book?site={net.site['id']}&session_type=iv_infusion&at={at}")
        assert "Induction series" in form.text
        fields = {"csrf": csrf, "site": net.site["id"], "at": at, "session_type": "iv_infusion",
                  "given_name": "Noor", "family_name": "Haddad", "phone": "604-555-0190",
                  "language": "en", "sms_consent": "yes", "ride_name": "Sami Haddad",
                  "ride_phone": "604-555-0191", "ride_consent": "yes", "series": "yes",
                  "count": "6", "within": "21"}
        proposal = await browser.post("/week/propose", data=fields, headers={"HX-Request": "true"})
        assert proposal.status_code == 200, proposal.text
        times = re.findall(r'name="times" value="([^"]+)"', proposal.text)
        assert len(times) == 6 and times[0] == at
        days = [datetime.fromisoformat(t).date() for t in times]
        assert (days[-1] - days[0]).days <= 20 and len(set(days)) == 6
        booked = await browser.post("/week/book", data={**fields, "times": times},
                                    headers={"HX-Request": "true"})
        assert booked.status_code == 200 and _calls(booked) <= 3
        assert "6 session(s) booked." in booked.text
        patient_id = re.search(r'href="/patients/([0-9a-f-]+)"', booked.text).group(1)

        async def confirmation_shown():
            page = await browser.get(f"/patients/{patient_id}")
            return page if re.search(r'data-kind="confirmation">(sent|delivered)<', page.text) else None
        page = await eventually(confirmation_shown, timeout=30)
        assert _calls(page) <= 3
        assert "Noor Haddad" in page.text and "Sami Haddad" in page.text
        assert page.headers["cache-control"] == "no-store"
        assert "Noor" not in str(page.url) and "0190" not in str(page.url)


async def test_the_inbox_lists_rides_to_arrange_and_the_action_takes_them_off(console):
    http = console.spine.booking.http
    net = await create_network(http)
    tz = ZoneInfo(net.site["timezone"])
    soon = (datetime.now(tz) + timedelta(days=1)).replace(hour=11, minute=0, second=0, microsecond=0)
    b = await http.post("/bookings", headers=net.headers, json={
        "patient_id": net.patient["id"], "site_id": net.site["id"], "session_type": "iv_infusion",
        "starts_at": soon.strftime("%Y-%m-%dT%H:%M:%S")})
    assert b.status_code == 201
    clinician = await add_person(http, net.headers, "clinician", totp=False)
    async with console.browser() as browser:
        csrf = await sign_in_browser(console, browser, clinician)
        inbox = await browser.get("/inbox")
        assert inbox.status_code == 200 and _calls(inbox) <= 3
        assert inbox.text.count('data-item="ride"') == 1
        done = await browser.post(f"/inbox/bookings/{b.json()['id']}/ride", headers={"HX-Request": "true"},
                                  data={"csrf": csrf, "driver_name": "Sam"})
        assert done.status_code == 200
        assert 'data-item="ride"' not in done.text
    assert (await http.get(f"/bookings/{b.json()['id']}", headers=net.headers)).json()["ride"] == {
        "status": "confirmed", "driver_name": "Sam"}


async def test_an_admin_adds_a_scheduler_in_network_settings_and_others_may_not_open_them(console):
    http = console.spine.booking.http
    net = await create_network(http)
    admin = await add_person(http, net.headers, "admin")
    scheduler = await add_person(http, net.headers, "scheduler", totp=False)
    async with console.browser() as browser:
        csrf = await sign_in_browser(console, browser, admin)
        page = await browser.get("/network")
        assert page.status_code == 200 and _calls(page) <= 3
        added = await browser.post("/network/staff", data={
            "csrf": csrf, "name": "Sky Scheduler", "email": "sky@clinic.example", "role": "scheduler",
            "language": "fr"})
        assert added.status_code == 200
        code = re.search(r'data-testid="enrolment-code">([^<]+)<', added.text).group(1)
        assert len(code) > 20
        assert 'data-staff="sky@clinic.example"' in added.text
    async with console.browser() as browser:
        await sign_in_browser(console, browser, scheduler)
        assert (await browser.get("/network")).status_code == 403


async def test_an_id_of_another_network_is_a_404_on_every_page(console):
    http = console.spine.booking.http
    mine = await create_network(http)
    other = await create_network(http, name="Other")
    person = await add_person(http, mine.headers, "admin")
    async with console.browser() as browser:
        await sign_in_browser(console, browser, person)
        for url in (f"/day?site={other.site['id']}&date=2030-01-07",
                    f"/day/sheet?site={other.site['id']}&date=2030-01-07",
                    f"/week?site={other.site['id']}&date=2030-01-07",
                    f"/patients/{other.patient['id']}"):
            assert (await browser.get(url)).status_code == 404, url


async def test_the_week_of_one_provider_shows_their_sessions_and_free_times_only(console):
    http = console.spine.booking.http
    net = await create_network(http, rooms=2, providers=2)
    tz = ZoneInfo(net.site["timezone"])
    day = (datetime.now(tz) + timedelta(days=2)).date()
    first, second = net.providers
    booked = await http.post("/bookings", headers=net.headers, json={
        "patient_id": net.patient["id"], "site_id": net.site["id"], "session_type": "assessment",
        "starts_at": f"{day}T10:00:00", "provider_id": second["id"]})
    assert booked.status_code == 201
    person = await add_person(http, net.headers, "scheduler", totp=False)
    async with console.browser() as browser:
        await sign_in_browser(console, browser, person)
        url = f"/week?site={net.site['id']}&date={day}&session_type=assessment"
        everyone = await browser.get(url + "&provider=")
        assert everyone.status_code == 200 and "Pat Test" in everyone.text
        assert f'data-slot="{day}T10:00"' in everyone.text  # the first provider is free then
        mine = await browser.get(url + f"&provider={first['id']}")
        assert "Pat Test" not in mine.text and f'data-slot="{day}T10:00"' in mine.text
        theirs = await browser.get(url + f"&provider={second['id']}")
        assert "Pat Test" in theirs.text and f'data-slot="{day}T10:00"' not in theirs.text
        assert "Provider 2" in theirs.text


async def test_a_reply_to_read_and_an_opt_out_are_in_the_inbox_until_staff_handle_them(console):
    from tests.console_helpers import signed_inbound

    http = console.spine.booking.http
    net = await create_network(http, patient={"phone": new_number()})  # a reply is its number's
    tz = ZoneInfo(net.site["timezone"])
    soon = (datetime.now(tz) + timedelta(days=3)).replace(hour=11, minute=0, second=0, microsecond=0)
    assert (await http.post("/bookings", headers=net.headers, json={
        "patient_id": net.patient["id"], "site_id": net.site["id"], "session_type": "assessment",
        "starts_at": soon.strftime("%Y-%m-%dT%H:%M:%S")})).status_code == 201
    other = await add_patient_with(http, net, "Lou", "Berg", new_number())

    async def notifier_knows():
        r = await console.spine.notifier.http.get(f"/patients/{other['id']}/texts", headers=net.headers)
        return r.status_code == 200
    await eventually(notifier_knows)
    notifier = console.spine.notifier
    assert await signed_inbound(notifier, net.patient["phone_e164"], "Can I bring my dog?",
                                f"SM{uuid4().hex}") == 200
    assert await signed_inbound(notifier, other["phone_e164"], "STOP", f"SM{uuid4().hex}") == 200
    clinician = await add_person(http, net.headers, "clinician", totp=False)
    async with console.browser() as browser:
        await sign_in_browser(console, browser, clinician)
        inbox = await browser.get("/inbox")
        assert _calls(inbox) <= 3
        assert inbox.text.count('data-item="reply"') == 1 and "Can I bring my dog?" in inbox.text
        assert inbox.text.count('data-item="opt-out"') == 1 and "Lou Berg" in inbox.text
        reply_id = re.search(r'hx-post="/inbox/replies/(\d+)/read"', inbox.text).group(1)
        done = await browser.post(f"/inbox/replies/{reply_id}/read", headers={"HX-Request": "true"},
                                  data={"csrf": csrf_of(inbox.text)})
        assert done.status_code == 200
        assert 'data-item="reply"' not in done.text and "Can I bring my dog?" not in done.text
        opt_out_id = re.search(r'data-item="opt-out".*?hx-post="/inbox/replies/(\d+)/read"', done.text, re.S).group(1)
        acknowledged = await browser.post(f"/inbox/replies/{opt_out_id}/read", headers={"HX-Request": "true"},
                                          data={"csrf": csrf_of(inbox.text)})
        assert 'data-item="opt-out"' not in acknowledged.text


async def add_patient_with(http, net, given, family, phone):
    from tests.helpers import add_patient

    return await add_patient(http, net, given_name=given, family_name=family, phone=phone)
