"""The console in tests: started in this process against the spine's services (reached
through their ASGI apps), a browser-like client with its cookies, and signing in."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import Spine, eventually, own_or_shared
from tests.staff_helpers import Person

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Console:
    app: object
    spine: Spine

    def browser(self, address: str = "127.0.0.1") -> httpx.AsyncClient:
        """A new browser: its own cookies, talking to the console on localhost (from `address`)."""
        transport = httpx.ASGITransport(app=self.app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://localhost")


def console_settings(infra, namespace, **overrides):
    from services.console.settings import ConsoleSettings

    return ConsoleSettings(database_url=infra.database_url,
                           kafka_bootstrap_servers=infra.bootstrap_servers,
                           db_schema=f"{namespace}_console", topic_prefix=f"{namespace}.",
                           booking_url="http://booking", plans_url="http://plans",
                           notifier_url="http://notifier", kafka_session_timeout_ms=2000,
                           kafka_heartbeat_interval_ms=300, **overrides)


async def start_console(spine: Spine, settings) -> Console:
    from services.console.bootstrap import bootstrap

    transports = {name: httpx.ASGITransport(app=svc.app) for name, svc in spine.services.items()}
    app = bootstrap(settings, transports)
    await app.state.runtime.start()
    return Console(app, spine)


@pytest.fixture(scope="module")
def console_overrides() -> dict:
    return {}


@contextlib.asynccontextmanager
async def running_console(spine: Spine, infra, **overrides) -> AsyncIterator[Console]:
    """The console, started in this process next to `spine` (on its topics), stopped on leaving."""
    c = await start_console(spine, console_settings(infra, spine.topic_prefix.removesuffix("."),
                                                    **overrides))
    try:
        yield c
    finally:
        await c.app.state.runtime.stop()


@pytest.fixture
def console(request: pytest.FixtureRequest, infra) -> Console:
    """The console, started in this process next to the spine: the test's own, or its module's
    (`shares_services`)."""
    return own_or_shared(request, "console")


@pytest.fixture
async def own_console(own_spine, infra, console_overrides) -> AsyncIterator[Console]:
    async with running_console(own_spine, infra, **console_overrides) as started:
        yield started


@pytest.fixture(scope="module")
async def module_console(module_spine, infra, console_overrides) -> AsyncIterator[Console]:
    async with running_console(module_spine, infra, **console_overrides) as started:
        yield started


def csrf_of(html: str) -> str:
    return CSRF.search(html).group(1)


async def token_keys_everywhere(spine: Spine) -> None:
    """Wait until every staff token key booking has made reached plans and the notifier (as
    StaffTokenKeyIssued events): until then they refuse the network's tokens, and the console
    signs out a person a service refused."""
    async def kids(svc) -> set[str]:
        return {r["kid"] for r in await svc.runtime.db.fetch("SELECT kid FROM token_keys")}

    made = await kids(spine.booking)

    async def arrived() -> bool:
        return made <= await kids(spine.plans) and made <= await kids(spine.notifier)
    await eventually(arrived)


async def sign_in_browser(console: Console, browser: httpx.AsyncClient, person: Person,
                          steps_ahead: int = 1) -> str:
    """Sign `person` in through the console's form (once their network's token key is known
    everywhere); the signed-in page's CSRF token."""
    await token_keys_everywhere(console.spine)
    page = await browser.get("/sign-in")
    form = {"csrf": csrf_of(page.text), "email": person.email, "password": person.password,
            "totp_code": person.code(steps_ahead) or ""}
    done = await browser.post("/sign-in", data=form)
    assert done.status_code == 303, done.text
    home = await browser.get("/day", follow_redirects=True)
    assert home.status_code == 200 and home.url.path == "/day", (home.url, home.text)
    return csrf_of(home.text)


@contextlib.asynccontextmanager
async def served(app) -> AsyncIterator[str]:
    """Serve `app` (already started) over real HTTP on a free local port, for streams."""
    import uvicorn

    from devstack.embedded import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off",
                                           log_config=None, access_log=False))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def signed_inbound(notifier, sender: str, body: str, sid: str) -> int:
    """A patient's text as Twilio posts it, signed with the notifier's auth token (set here)."""
    from twilio.request_validator import RequestValidator

    settings = notifier.runtime.settings
    settings.twilio_auth_token = settings.twilio_auth_token or "test-auth-token"
    settings.public_base_url = settings.public_base_url or "http://notifier"
    url = settings.public_base_url + "/twilio/inbound"
    params = {"MessageSid": sid, "From": sender, "To": "+15005550006", "Body": body}
    signature = RequestValidator(settings.twilio_auth_token).compute_signature(url, params)
    r = await notifier.http.post("/twilio/inbound", data=params, headers={"X-Twilio-Signature": signature})
    return r.status_code
