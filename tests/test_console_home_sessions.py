"""The console's attention inbox lists a home session whose support person has not confirmed
(not as a ride to arrange), and the action takes it off; the day sheet lists it under its
mode, as it has no room (issue 17)."""

from __future__ import annotations

from tests.console_helpers import console, console_overrides, module_console, own_console, sign_in_browser  # noqa: F401
from tests.helpers import create_network
from tests.staff_helpers import add_person
from tests.test_booking_rules import ALL_DAY
from tests.test_visit_modes import within_a_day


async def test_the_inbox_lists_home_sessions_until_their_support_person_confirms_and_the_day_sheet_shows_them(console):
    http = console.spine.booking.http
    net = await create_network(http, hours=ALL_DAY)
    await http.post("/clinic/remote-visits", headers=net.headers,
                    json={"video_link_template": "https://meet.example.com/c-{code}"})
    b = await http.post("/bookings", headers=net.headers, json={
        "patient_id": net.patient["id"], "site_id": net.site["id"],
        "session_type": "home_low_dose", "mode": "home",
        "starts_at": within_a_day(net.site["timezone"]),
        "support_person": {"name": "Sam Support", "phone": "604-555-0188", "sms_consent": True}})
    assert b.status_code == 201, b.text
    clinician = await add_person(http, net.headers, "clinician", totp=False)
    async with console.browser() as browser:
        csrf = await sign_in_browser(console, browser, clinician)
        inbox = await browser.get("/inbox")
        assert inbox.status_code == 200
        assert inbox.text.count('data-item="support"') == 1
        assert 'data-item="ride"' not in inbox.text, "a home session needs no ride"
        day = await browser.get(f"/day?site={net.site['id']}&date={b.json()['starts_at_local'][:10]}")
        assert day.status_code == 200  # on the day sheet, under its mode (it has no room)
        assert f'data-booking="{b.json()["id"]}"' in day.text and "<h2>At home</h2>" in day.text
        done = await browser.post(f"/inbox/bookings/{b.json()['id']}/support",
                                  headers={"HX-Request": "true"}, data={"csrf": csrf})
        assert done.status_code == 200
        assert 'data-item="support"' not in done.text
    booked = (await http.get(f"/bookings/{b.json()['id']}", headers=net.headers)).json()
    assert booked["support_person"]["confirmed"] is True
