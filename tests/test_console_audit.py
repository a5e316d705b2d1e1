"""The console's view of the audit trails (issue 20): the patient page shows who viewed the
record, merged from booking, plans and the notifier in time order (admins and privacy
officers); the audit page shows a staff member's activity; others may not open it."""

from __future__ import annotations

import re

import pytest

from tests.console_helpers import console, console_overrides, csrf_of, module_console, own_console, sign_in_browser  # noqa: F401
from tests.helpers import create_network, key_everywhere
from tests.staff_helpers import add_person

pytestmark = pytest.mark.shared_services  # each test makes its own clinic network


def _rows(html: str) -> list[tuple[str, str, str]]:
    """(who, service, action) of each row of the audit table."""
    table = html.split('data-testid="audit"', 1)[1].split("</table>", 1)[0]
    return [(who.strip(), service, action) for who, service, action in re.findall(
        r"<tr>\s*<td>[^<]*</td>\s*<td>([^<]*)</td>\s*<td>[^<]*</td>\s*<td>(\w+)</td>\s*"
        r"<td><code>(\w+)</code></td>", table)]


async def _flush(spine) -> None:
    for svc in spine.services.values():
        await svc.runtime.audit.flush(svc.runtime.db)


async def test_an_admin_sees_who_viewed_a_patients_record_across_the_three_services(console):
    spine, http = console.spine, console.spine.booking.http
    net = await create_network(http)
    await key_everywhere(spine, net)
    admin = await add_person(http, net.headers, "admin", name="Ada Admin")
    scheduler = await add_person(http, net.headers, "scheduler", totp=False, name="Sid Scheduler")
    patient = net.patient["id"]
    async with console.browser() as browser:
        await sign_in_browser(console, browser, scheduler)
        page = await browser.get(f"/patients/{patient}")
        assert page.status_code == 200 and "Who viewed this record" not in page.text
        assert (await browser.get("/audit")).status_code == 403
    await _flush(spine)
    async with console.browser() as browser:
        await sign_in_browser(console, browser, admin)
        page = await browser.get(f"/patients/{patient}")
        assert page.status_code == 200
        viewed = _rows(page.text.split("Who viewed this record", 1)[1])
        assert sorted(r for r in viewed if r[0] == "Sid Scheduler") == [
            ("Sid Scheduler", "booking", "patient_overview"),
            ("Sid Scheduler", "notifier", "patient_messages"),
            ("Sid Scheduler", "plans", "patient_plans")]


async def test_a_privacy_officer_reads_a_staff_members_activity_and_nothing_else(console):
    spine, http = console.spine, console.spine.booking.http
    net = await create_network(http)
    await key_everywhere(spine, net)
    scheduler = await add_person(http, net.headers, "scheduler", totp=False, name="Sid Scheduler")
    officer = await add_person(http, net.headers, "privacy", totp=False, name="Pia Privacy")
    async with console.browser() as browser:
        await sign_in_browser(console, browser, scheduler)
        assert (await browser.get(f"/patients/{net.patient['id']}")).status_code == 200
    await _flush(spine)
    async with console.browser() as browser:
        form = {"csrf": csrf_of((await browser.get("/sign-in")).text), "email": officer.email,
                "password": officer.password, "totp_code": ""}
        assert (await browser.post("/sign-in", data=form)).status_code == 303
        page = await browser.get("/audit", params={"staff_id": scheduler.id})
        assert page.status_code == 200
        rows = _rows(page.text)
        assert {r[0] for r in rows} == {"Sid Scheduler"}
        assert {(r[1], r[2]) for r in rows} >= {("booking", "patient_overview"),
                                               ("plans", "patient_plans"),
                                               ("booking", "sign_in")}
        assert (await browser.get(f"/patients/{net.patient['id']}")).status_code == 403
