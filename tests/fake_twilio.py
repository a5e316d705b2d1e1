"""A local Twilio-compatible server for tests: the real twilio SDK talks to it over HTTP.
It records each Messages API request, can answer with Twilio errors or stall, and sends
status callbacks and inbound messages signed (or forged) like Twilio's."""

from __future__ import annotations

import asyncio
import base64
import itertools
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator

from shared.embedded import free_port


@dataclass
class Fault:
    status: int
    code: int | None = None
    delay: float = 0.0


@dataclass
class Hold:
    """Hold the next request until `release`: `accepted` says whether Twilio has taken the
    message (recorded it) before holding, or not yet."""

    accepted: bool
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class FakeTwilio:
    account_sid: str = "AC" + "0" * 32
    auth_token: str = "test-auth-token"
    requests: list[dict] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    holds: list[Hold] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{account}/Messages.json", self._create)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        await self._runner.cleanup()

    def fail_next(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    async def _create(self, request: web.Request) -> web.Response:
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"code": 20003, "message": "Authenticate", "status": 401}, status=401)
        form = dict(await request.post())
        form["received_at"] = asyncio.get_running_loop().time()
        if self.holds:
            hold = self.holds.pop(0)
            sid = None
            if hold.accepted:
                sid = f"SM{next(self._ids):032d}"
                self.requests.append({**form, "sid": sid})
            hold.reached.set()
            await hold.release.wait()
            if sid is None:
                for _ in range(50):  # give the server a moment to notice a dead sender
                    if request.transport is None or request.transport.is_closing():
                        return web.Response(status=499)  # the sender went away: nothing taken
                    await asyncio.sleep(0.1)
            if sid is not None:
                return web.json_response({"sid": sid, "status": "queued"}, status=201)
        if self.faults:
            fault = self.faults.pop(0)
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status >= 400:
                self.requests.append({**form, "refused": fault.code or fault.status})
                return web.json_response({"code": fault.code, "message": "injected", "status": fault.status,
                                          "more_info": ""}, status=fault.status)
        sid = f"SM{next(self._ids):032d}"
        self.requests.append({**form, "sid": sid})
        return web.json_response({"sid": sid, "status": "queued", "to": form.get("To"),
                                  "from": form.get("From"), "body": form.get("Body"),
                                  "account_sid": self.account_sid, "num_segments": "1"}, status=201)

    def sent(self) -> list[dict]:
        return [r for r in self.requests if "sid" in r]

    async def post_signed(self, url: str, params: dict[str, str], forged: bool = False) -> int:
        token = "not-the-token" if forged else self.auth_token
        signature = RequestValidator(token).compute_signature(url, params)
        async with aiohttp.ClientSession() as http:
            async with http.post(url, data=params, headers={"X-Twilio-Signature": signature}) as r:
                return r.status

    async def callback(self, sid: str, status: str, error_code: str | None = None,
                       forged: bool = False) -> int:
        """Send the status callback the message asked for."""
        request = next(r for r in self.requests if r.get("sid") == sid)
        params = {"MessageSid": sid, "MessageStatus": status, "AccountSid": self.account_sid,
                  "To": request["To"], "From": request.get("From", "")}
        if error_code:
            params["ErrorCode"] = error_code
        return await self.post_signed(request["StatusCallback"], params, forged)

    async def inbound(self, url: str, from_: str, body: str, sid: str | None = None,
                      forged: bool = False) -> int:
        params = {"MessageSid": sid or f"SMin{next(self._ids):030d}", "From": from_,
                  "To": "+15005550006", "Body": body, "AccountSid": self.account_sid}
        return await self.post_signed(url, params, forged)
