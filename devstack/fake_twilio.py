"""A local Twilio-compatible server: the real twilio SDK talks to it over HTTP.

It records each Messages API request, can answer with Twilio errors or stall, and sends
status callbacks and inbound messages signed (or forged) like Twilio's. Tests run it in
their own event loop (`FakeTwilio.start()`); the load driver runs it as its own process
(`python -m devstack.fake_twilio`) and steers it over a small control API under `/_fake/`:

- `GET /_fake/requests?since=N`: the recorded requests from index N (JSON);
- `POST /_fake/faults` `{"mode": "20429"|"500"|"timeout"|"mixed"|"off", "seconds": s,
  "rate": r}`: answer that fraction of requests with the fault for a while;
- `POST /_fake/inbound` `{"url": ..., "from": ..., "body": ...}`: a patient's reply, signed.

A "timeout" stalls the request and then drops it without taking the message (a gateway
timeout): the sender cannot tell whether it was sent, and Twilio did not send it.
With `auto_callbacks`, every accepted message gets signed `sent` then `delivered` status
callbacks, retried with backoff until the webhook answers 2xx (as Twilio retries); with
`webhook_bases`, callbacks rotate over those base URLs (a load balancer in front of
several notifier instances) while the signature covers the public URL.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import random
import signal
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator

from devstack.embedded import free_port

FAULT_MODES = {"20429": (429, 20429), "500": (500, None), "timeout": (0, None)}


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
class FaultWindow:
    """Answer `rate` of the requests with `mode` until the loop time `until`."""

    mode: str
    until: float
    rate: float = 0.5
    stall_seconds: float = 12.0


@dataclass
class FakeTwilio:
    account_sid: str = "AC" + "0" * 32
    auth_token: str = "test-auth-token"
    requests: list[dict] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    holds: list[Hold] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    auto_callbacks: bool = False
    webhook_bases: list[str] = field(default_factory=list)
    window: FaultWindow | None = None
    callbacks_acknowledged: int = 0
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _tasks: set = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{account}/Messages.json", self._create)
        app.router.add_get("/_fake/requests", self._list_requests)
        app.router.add_post("/_fake/faults", self._set_faults)
        app.router.add_post("/_fake/inbound", self._post_inbound)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self._http.close()
        await self._runner.cleanup()

    def fail_next(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    def _record(self, form: dict, **extra) -> dict:
        entry = {**form, **extra, "received_at": asyncio.get_running_loop().time(),
                 "received_unix": time.time()}
        self.requests.append(entry)
        return entry

    async def _create(self, request: web.Request) -> web.Response:
        expected = (
            "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        )
        if request.headers.get("Authorization") != expected:
            return web.json_response(
                {"code": 20003, "message": "Authenticate", "status": 401}, status=401
            )
        form = dict(await request.post())
        if self.holds:
            hold = self.holds.pop(0)
            sid = None
            if hold.accepted:
                sid = f"SM{next(self._ids):032d}"
                self._record(form, sid=sid)
            hold.reached.set()
            await hold.release.wait()
            if sid is None:
                for _ in range(50):  # give the server a moment to notice a dead sender
                    if request.transport is None or request.transport.is_closing():
                        return web.Response(status=499)  # the sender went away: nothing taken
                    await asyncio.sleep(0.1)
            if sid is not None:
                if self.auto_callbacks and form.get("StatusCallback"):
                    self._spawn(self._deliver_receipts(sid, form))
                return web.json_response({"sid": sid, "status": "queued"}, status=201)
        fault = self._next_fault()
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status == 0:  # a stalled gateway: the message was not taken
                self._record(form, refused="timeout")
                return web.json_response(
                    {"code": None, "message": "gateway timeout", "status": 504}, status=504
                )
            if fault.status >= 400:
                self._record(form, refused=fault.code or fault.status)
                return web.json_response(
                    {
                        "code": fault.code,
                        "message": "injected",
                        "status": fault.status,
                        "more_info": "",
                    },
                    status=fault.status,
                )
        sid = f"SM{next(self._ids):032d}"
        self._record(form, sid=sid)
        if self.auto_callbacks and form.get("StatusCallback"):
            self._spawn(self._deliver_receipts(sid, form))
        return web.json_response({"sid": sid, "status": "queued", "to": form.get("To"),
                                  "from": form.get("From"), "body": form.get("Body"),
                                  "account_sid": self.account_sid, "num_segments": "1"}, status=201)

    def _next_fault(self) -> Fault | None:
        if self.faults:
            return self.faults.pop(0)
        w = self.window
        if w is None or asyncio.get_running_loop().time() > w.until or random.random() >= w.rate:
            return None
        mode = random.choice(list(FAULT_MODES)) if w.mode == "mixed" else w.mode
        status, code = FAULT_MODES[mode]
        return Fault(status, code, delay=w.stall_seconds if mode == "timeout" else 0.0)

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def sent(self) -> list[dict]:
        return [r for r in self.requests if "sid" in r]

    def _target(self, public_url: str, attempt: int) -> str:
        """Where a webhook for `public_url` is posted: rotated over `webhook_bases` if set."""
        if not self.webhook_bases:
            return public_url
        base = self.webhook_bases[attempt % len(self.webhook_bases)].rstrip("/")
        parts = urlsplit(public_url)
        return base + parts.path + (f"?{parts.query}" if parts.query else "")

    async def post_signed(self, url: str, params: dict[str, str], forged: bool = False,
                          target: str | None = None) -> int:
        token = "not-the-token" if forged else self.auth_token
        signature = RequestValidator(token).compute_signature(url, params)
        async with aiohttp.ClientSession() as http, http.post(target or url, data=params,
                             headers={"X-Twilio-Signature": signature}) as r:
            return r.status

    async def _post_until_acknowledged(
        self, url: str, params: dict[str, str], tries: int = 30
    ) -> int:
        """Post a signed webhook, retrying with backoff (a notifier may be down for a while)."""
        signature = RequestValidator(self.auth_token).compute_signature(url, params)
        status = 0
        for attempt in range(tries):
            try:
                async with self._http.post(self._target(url, attempt), data=params,
                                           headers={"X-Twilio-Signature": signature}) as r:
                    status = r.status
                    if status < 300:
                        return status
            except (TimeoutError, aiohttp.ClientError):
                status = 0
            await asyncio.sleep(min(10.0, 0.5 * 2 ** attempt) * (0.5 + random.random()))
        return status

    async def _deliver_receipts(self, sid: str, form: dict) -> None:
        await asyncio.sleep(0.05 + random.random() * 0.2)
        for status in ("sent", "delivered"):
            params = {"MessageSid": sid, "MessageStatus": status, "AccountSid": self.account_sid,
                      "To": form["To"], "From": form.get("From", "")}
            acknowledged = await self._post_until_acknowledged(form["StatusCallback"], params) < 300
            if acknowledged and status == "delivered":
                self.callbacks_acknowledged += 1
                for r in reversed(self.requests):
                    if r.get("sid") == sid:
                        r["delivered_acknowledged"] = True
                        break

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

    # --- control API (used when running as a process) ------------------------------------

    async def _list_requests(self, request: web.Request) -> web.Response:
        since = int(request.query.get("since", 0))
        return web.json_response({"requests": self.requests[since:], "next": len(self.requests),
                                  "callbacks_acknowledged": self.callbacks_acknowledged})

    async def _set_faults(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("mode", "off") == "off":
            self.window = None
        else:
            self.window = FaultWindow(
                body["mode"],
                asyncio.get_running_loop().time() + body["seconds"],
                rate=body.get("rate", 0.5),
                stall_seconds=body.get("stall_seconds", 12.0),
            )
        return web.json_response({"ok": True})

    async def _post_inbound(self, request: web.Request) -> web.Response:
        body = await request.json()
        params = {
            "MessageSid": body.get("sid") or f"SMin{next(self._ids):030d}",
            "From": body["from"],
            "To": "+15005550006",
            "Body": body["body"],
            "AccountSid": self.account_sid,
        }
        status = await self._post_until_acknowledged(
            body["url"], params, tries=body.get("tries", 30)
        )
        return web.json_response({"status": status})


async def _serve(args: argparse.Namespace) -> None:
    twilio = FakeTwilio(account_sid=args.account_sid, auth_token=args.auth_token, port=args.port,
                        auto_callbacks=True, webhook_bases=args.webhook_base or [])
    await twilio.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"fake Twilio on {twilio.url}", flush=True)
    await stop.wait()
    await twilio.stop()


def main(argv: list[str] | None = None) -> None:
    """`python -m devstack.fake_twilio --port P`: serve until SIGTERM."""
    parser = argparse.ArgumentParser(prog="fake_twilio")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--account-sid", default="AC" + "0" * 32)
    parser.add_argument("--auth-token", default="test-auth-token")
    parser.add_argument("--webhook-base", action="append", help="notifier base URL (repeatable)")
    asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
