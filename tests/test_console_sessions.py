"""The console's sessions: signing in through the form, cookies, CSRF on every form, idle
sign-out, the security headers, and a stolen cookie useless after sign-out."""

from __future__ import annotations

import asyncio

from tests.console_helpers import console, console_overrides, csrf_of, sign_in_browser  # noqa: F401
from tests.helpers import create_network
from tests.staff_helpers import add_person


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
        cookie = [v for k, v in done.headers.multi_items() if k == "set-cookie"
                  and v.startswith("kcb_session=")][0]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # plain HTTP on localhost
        home = await browser.get("/day", follow_redirects=True)
        assert home.status_code == 200
        assert home.headers["cache-control"] == "no-store"
        assert "<script>" not in home.text and " on" not in home.text.split("<body")[1].split(">")[0]

