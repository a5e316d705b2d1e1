"""The console's sessions: signing in through the form, cookies, CSRF on every form, idle
sign-out, the security headers, and a stolen cookie useless after sign-out."""

from __future__ import annotations

from uuid import UUID

import pytest

from tests.console_helpers import console, console_overrides, csrf_of, module_console, own_console, sign_in_browser  # noqa: F401
from tests.helpers import create_network
from tests.staff_helpers import add_person

pytestmark = pytest.mark.shared_services  # each test makes its own clinic network and people,
# and reads only their sessions


async def test_signing_in_sets_a_strict_httponly_cookie_and_pages_are_not_stored(console):
    net = await create_network(console.spine.booking.http)
    person = await add_person(console.spine.booking.http, net.headers, "scheduler")
    async with console.browser() as browser:
        page = await browser.get("/sign-in")
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert page.headers["cache-control"] == "no-store"
        done = await browser.post("/sign-in", data={
            "csrf": csrf_of(page.text), "email": person.email, "password": person.password,
            "totp_code": person.code(1)})
        assert done.status_code == 303
        cookie = next(v for k, v in done.headers.multi_items() if k == "set-cookie"
                      and v.startswith("kcb_session="))
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # plain HTTP on localhost
        home = await browser.get("/day", follow_redirects=True)
        assert home.status_code == 200
        assert home.headers["cache-control"] == "no-store"
        assert "<script>" not in home.text and " on" not in home.text.split("<body")[1].split(">")[0]



async def test_a_form_without_the_csrf_token_is_refused_with_403(console):
    net = await create_network(console.spine.booking.http)
    person = await add_person(console.spine.booking.http, net.headers, "admin")
    async with console.browser() as browser:
        await sign_in_browser(console, browser, person)
        for path, data in (("/network/room", {"site_id": net.site["id"], "name": "Sneaky"}),
                           ("/sign-out", {}),
                           ("/day/bookings/00000000-0000-0000-0000-000000000000/check-in",
                            {"site": net.site["id"], "date": "2030-01-07"})):
            refused = await browser.post(path, data=data)
            assert refused.status_code == 403, path
            wrong = await browser.post(path, data={**data, "csrf": "not-the-token"})
            assert wrong.status_code == 403, path
        # before sign-in too: the sign-in form needs its cookie's token
    async with console.browser() as anonymous:
        refused = await anonymous.post("/sign-in", data={"email": person.email, "password": "x"})
        assert refused.status_code == 403
    rooms = (await console.spine.booking.http.get(f"/sites/{net.site['id']}", headers=net.headers)).json()["rooms"]
    assert [r["name"] for r in rooms] == ["Room 1"]


async def test_a_csrf_token_sent_as_a_file_is_refused_with_403_not_a_server_error(console):
    net = await create_network(console.spine.booking.http)
    person = await add_person(console.spine.booking.http, net.headers, "admin")
    upload = {"csrf": ("csrf.txt", b"not-the-token", "text/plain")}
    async with console.browser() as browser:
        await sign_in_browser(console, browser, person)
        refused = await browser.post("/network/room", files=upload,
                                     data={"site_id": net.site["id"], "name": "Sneaky"})
        assert refused.status_code == 403
    async with console.browser() as anonymous:
        await anonymous.get("/sign-in")
        refused = await anonymous.post("/sign-in", files=upload,
                                       data={"email": person.email, "password": "x"})
        assert refused.status_code == 403


async def test_a_stolen_cookie_is_useless_after_sign_out(console):
    net = await create_network(console.spine.booking.http)
    person = await add_person(console.spine.booking.http, net.headers, "scheduler")
    async with console.browser() as browser:
        csrf = await sign_in_browser(console, browser, person)
        stolen = dict(browser.cookies)
        out = await browser.post("/sign-out", data={"csrf": csrf})
        assert out.status_code == 303
    async with console.browser() as thief:
        thief.cookies.update(stolen)
        page = await thief.get("/day")
        assert page.status_code == 303 and page.headers["location"].startswith("/sign-in")
        assert (await thief.get(f"/patients/{net.patient['id']}")).status_code == 303
    token = await console.app.state.runtime.db.fetchval(
        "SELECT count(*) FROM sessions WHERE staff_id = $1", UUID(person.id))
    assert token == 0


async def test_a_read_only_person_sees_no_action_and_the_api_refuses_them(console):
    http = console.spine.booking.http
    net = await create_network(http)
    reader = await add_person(http, net.headers, "read-only", totp=False)
    async with console.browser() as browser:
        csrf = await sign_in_browser(console, browser, reader)
        page = await browser.get(f"/day?site={net.site['id']}&date=2030-01-07")
        assert "hx-post" not in page.text.split('id="sheet"')[1]
        week = await browser.get(f"/week?site={net.site['id']}&date=2030-01-07")
        assert "hx-get=\"/week/book" not in week.text
        refused = await browser.post("/week/book", data={"csrf": csrf, "site": net.site["id"],
                                                          "session_type": "assessment",
                                                          "times": "2030-01-08T10:00",
                                                          "patient_id": net.patient["id"]})
        assert refused.status_code == 403
        session_token = await console.app.state.runtime.db.fetchval(
            "SELECT token FROM sessions WHERE staff_id = $1", UUID(reader.id))
    # the services refuse the person's own token too, whatever the console shows
    from tests.staff_helpers import bearer
    direct = await http.post("/bookings", headers=bearer(session_token), json={
        "patient_id": net.patient["id"], "site_id": net.site["id"], "session_type": "assessment",
        "starts_at": "2030-01-08T10:00:00"})
    assert direct.status_code == 403


async def test_an_idle_session_is_signed_out(console):
    net = await create_network(console.spine.booking.http)
    person = await add_person(console.spine.booking.http, net.headers, "clinician", totp=False)
    async with console.browser() as browser:
        await sign_in_browser(console, browser, person)
        await console.app.state.runtime.db.execute(
            "UPDATE sessions SET last_seen_at = now() - interval '16 minutes' WHERE staff_id = $1",
            UUID(person.id))
        status = await browser.get("/session/status")
        assert status.headers["hx-redirect"] == "/sign-in?ended=idle"
        page = await browser.get("/day")
        assert page.status_code == 303 and page.headers["location"].startswith("/sign-in")
    assert await console.app.state.runtime.db.fetchval(
        "SELECT count(*) FROM sessions WHERE staff_id = $1", UUID(person.id)) == 0


async def test_a_token_about_to_expire_is_refreshed_while_the_person_works(console):
    net = await create_network(console.spine.booking.http)
    person = await add_person(console.spine.booking.http, net.headers, "scheduler", totp=False)
    db = console.app.state.runtime.db
    async with console.browser() as browser:
        await sign_in_browser(console, browser, person)
        mine = UUID(person.id)
        await db.execute("UPDATE sessions SET token_expires_at = now() + interval '60 seconds'"
                         " WHERE staff_id = $1", mine)
        assert (await browser.get("/patients")).status_code == 200
        row = await db.fetchrow("SELECT token, token_expires_at - now() AS left FROM sessions"
                                " WHERE staff_id = $1", mine)
        assert row["left"].total_seconds() > 800  # a fresh token from booking, 15 minutes
        from tests.staff_helpers import bearer
        assert (await console.spine.booking.http.get("/auth/me", headers=bearer(row["token"]))).status_code == 200
