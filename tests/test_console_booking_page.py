"""The public booking page of the console (`/book/<slug>`), as a browser without JavaScript
posts it, against the spine's services: slots in the visitor's time zone, the form, the code
texted through the notifier, the booking; the honeypot; bad input answered with the form and
what to fix (never a 5xx); English, French and Spanish. The tests share their module's services:
each test's browser has an address of its own, its visitors numbers of their own (codes are
limited per address and per number), and it reads only its own network's rows."""

from __future__ import annotations

import re
from uuid import UUID

import pytest

from shared.consent import ONLINE_CONSENT, ONLINE_CONSENT_VERSION
from tests.conftest import eventually
from tests.console_helpers import console, console_overrides, csrf_of, module_console, own_console  # noqa: F401 (fixtures)
from tests.helpers import create_network, new_address, new_number

pytestmark = pytest.mark.shared_services


def form_of(page: str, **fields) -> dict:
    """The booking form filled in: the first free time, a visitor's details (a new number)."""
    first = re.search(r'name="starts_at" id="slot-0" value="([^"]+)"', page).group(1)
    return {"csrf": csrf_of(page), "lang": "en", "tz": "America/Toronto", "starts_at": first,
            "mode": "phone", "given_name": "Ari", "family_name": "Stone", "phone": new_number(),
            "language": "en", "consent": "yes", "website": "", **fields}


async def test_a_visitor_books_a_consultation_on_the_page_without_javascript(console, db):
    spine = console.spine
    net = await create_network(spine.booking.http, name="Lakeside Clinics")
    browser = console.browser(new_address())
    page = await browser.get("/book/lakeside-clinics?tz=America/Toronto")
    assert page.status_code == 200
    assert "<h1>Book a free 15-minute consultation</h1>" in page.text
    wording = ONLINE_CONSENT[ONLINE_CONSENT_VERSION]["en"].format(clinic="Lakeside Clinics")
    assert wording in page.text
    assert '<option value="America/Toronto" selected>' in page.text
    # the site opens at 07:00 Vancouver time: 10:00 in Toronto
    assert re.search(r'<label for="slot-\d+">10:00\s?AM</label>', page.text.replace("\u202f", " "))
    assert "<script" not in page.text

    phone = new_number()
    asked = await browser.post("/book/lakeside-clinics", data=form_of(page.text, phone=phone))
    assert asked.status_code == 303, asked.text
    code_url = asked.headers["location"]
    assert re.fullmatch(r"/book/lakeside-clinics/code/[0-9a-f-]{36}\?lang=en", code_url)

    async def texted():
        return await db.fetchval(f'SELECT body FROM "{spine.notifier.schema}".recorded_sms '
                                 "WHERE to_e164 = $1 AND text_id < 0", phone)
    code = re.search(r"\d{6}", await eventually(texted, timeout=30)).group(0)
    code_page = await browser.get(code_url)
    assert code_page.status_code == 200 and "Enter your code" in code_page.text
    wrong = await browser.post(code_url.split("?")[0], data={
        "csrf": csrf_of(code_page.text), "lang": "en", "code": "99999x"})
    assert wrong.status_code == 422 and "That code is not right" in wrong.text
    done = await browser.post(code_url.split("?")[0], data={
        "csrf": csrf_of(code_page.text), "lang": "en", "code": code})
    assert done.status_code == 200, done.text
    assert "Your consultation is booked" in done.text and "reply 2" in done.text
    assert "Eastern Standard Time" in done.text  # the visitor's time zone
    [b] = (await spine.booking.http.get("/bookings", headers=net.headers,
                                        params={"status": "booked"})).json()["items"]
    assert (b["source"], b["mode"], b["session_type"]) == ("online", "phone", "consultation")


async def test_a_filled_honeypot_is_answered_like_any_form_and_nothing_is_sent(console, db):
    spine = console.spine
    net = await create_network(spine.booking.http, name="Pot Clinics")
    browser = console.browser(new_address())
    page = await browser.get("/book/pot-clinics")
    asked = await browser.post("/book/pot-clinics", data=form_of(page.text, website="http://spam"))
    assert asked.status_code == 303 and "/book/pot-clinics/code/" in asked.headers["location"]
    assert await db.fetchval(f'SELECT count(*) FROM "{spine.booking.schema}".online_requests'
                             " WHERE clinic_id = $1", UUID(net.clinic["id"])) == 0


async def test_bad_input_brings_the_form_back_saying_what_to_fix(console):
    spine = console.spine
    await create_network(spine.booking.http, name="Form Clinics")
    browser = console.browser(new_address())
    page = await browser.get("/book/form-clinics")
    for fields, message in (({"consent": ""}, "Tick the box: the code comes by text."),
                            ({"phone": "1-800-555-0100"}, "Give a mobile number of the US or Canada."),
                            ({"given_name": ""}, "Give your first name."),
                            ({"starts_at": "2020-01-01T00:00:00+00:00"}, "Choose a time that is still free."),
                            ({"mode": "carrier pigeon"}, "Choose phone or video.")):
        r = await browser.post("/book/form-clinics", data=form_of(page.text, **fields))
        assert r.status_code == 422, (fields, r.status_code)
        assert message in r.text, fields
        assert 'role="alert"' in r.text
    no_csrf = await browser.post("/book/form-clinics", data={**form_of(page.text), "csrf": "x"})
    assert no_csrf.status_code == 403
    assert (await browser.get("/book/no-such-network")).status_code == 404
    assert (await browser.get("/book/Not_A_Slug")).status_code == 404


async def test_the_page_comes_in_english_french_and_spanish(console):
    spine = console.spine
    await create_network(spine.booking.http, name="Tri Clinics")
    browser = console.browser(new_address())
    headings = {}
    for lang in ("en", "fr", "es"):
        page = await browser.get(f"/book/tri-clinics?lang={lang}")
        headings[lang] = (re.search(r'<html lang="([^"]+)">', page.text).group(1),
                          re.search(r"<h1>([^<]+)</h1>", page.text).group(1))
        wording = ONLINE_CONSENT[ONLINE_CONSENT_VERSION][lang].format(clinic="Tri Clinics")
        assert wording.replace("'", "&#39;") in page.text, lang
    assert headings == {"en": ("en", "Book a free 15-minute consultation"),
                        "fr": ("fr-CA", "Prenez une consultation gratuite de 15 minutes"),
                        "es": ("es", "Reserve una consulta gratuita de 15 minutos")}
    spanish = await browser.get("/book/tri-clinics", headers={"Accept-Language": "es-US,es;q=0.9"})
    assert '<html lang="es">' in spanish.text


async def test_a_time_taken_meanwhile_says_so_and_leads_back_to_the_times(console, db):
    spine = console.spine
    await create_network(spine.booking.http, name="Taken Clinics")
    browser = console.browser(new_address())
    page = await browser.get("/book/taken-clinics?tz=America/Toronto")
    code_urls = {}
    visitors = new_number(), new_number()
    for phone in visitors:  # two visitors ask for the same time
        asked = await browser.post("/book/taken-clinics", data=form_of(page.text, phone=phone))
        assert asked.status_code == 303, asked.text
        code_urls[phone] = asked.headers["location"].split("?")[0]

    async def code_to(number: str) -> str:
        async def texted():
            return await db.fetchval(f'SELECT body FROM "{spine.notifier.schema}".recorded_sms '
                                     "WHERE to_e164 = $1 AND text_id < 0", number)
        return re.search(r"\d{6}", await eventually(texted, timeout=30)).group(0)

    first, second = await code_to(visitors[0]), await code_to(visitors[1])
    csrf = csrf_of(page.text)
    done = await browser.post(code_urls[visitors[0]], data={"csrf": csrf, "lang": "en", "code": first})
    assert done.status_code == 200 and "Your consultation is booked" in done.text
    taken = await browser.post(code_urls[visitors[1]], data={"csrf": csrf, "lang": "en", "code": second})
    assert taken.status_code == 409
    assert "That time can no longer be booked. Please choose another time." in taken.text
    assert '<a href="/book/taken-clinics?lang=en" data-testid="choose-another">Choose another time</a>' in taken.text
    assert "already used" not in taken.text and 'name="code"' not in taken.text
    again = await browser.post(code_urls[visitors[0]], data={"csrf": csrf, "lang": "en", "code": first})
    assert again.status_code == 409
    assert "This code was already used: your consultation is booked." in again.text
    assert "choose-another" not in again.text
