"""An admin previews and saves the network's own words for a text in the console's network
settings; words naming a drug are refused with the reason (issue 17)."""

from __future__ import annotations

from tests.console_helpers import console, console_overrides, module_console, own_console, sign_in_browser  # noqa: F401
from tests.helpers import create_network, key_everywhere
from tests.staff_helpers import add_person

OWN = "{clinic}: see you on {date} at {time}. Reply 1 to confirm, 2 to change. {phone}"


async def test_an_admin_previews_and_saves_the_networks_own_words(console):
    http = console.spine.booking.http
    net = await create_network(http)
    await key_everywhere(console.spine, net)
    admin = await add_person(http, net.headers, "admin")
    async with console.browser() as browser:
        csrf = await sign_in_browser(console, browser, admin)
        page = await browser.get("/network")
        assert page.status_code == 200 and 'data-form="template"' in page.text
        form = {"csrf": csrf, "kind": "confirmation", "language": "en", "body": OWN,
                "action": "preview"}
        preview = await browser.post("/network/template", data=form)
        assert preview.status_code == 200
        assert ("Cedar Grove: see you on Wed Dec 9 at 10:00 AM. Reply 1 to confirm, 2 to change. "
                "(604) 555-0100") in preview.text
        assert 'data-override=' not in preview.text, "a preview saves nothing"
        refused = await browser.post("/network/template", data={
            **form, "action": "save", "body": "{clinic}: your ketamine visit {date}. {phone}"})
        assert refused.status_code == 422
        assert "names a drug, procedure or diagnosis (ketamine)" in refused.text
        saved = await browser.post("/network/template", data={**form, "action": "save"})
        assert saved.status_code == 200
        assert 'data-override="confirmation-en-1"' in saved.text
