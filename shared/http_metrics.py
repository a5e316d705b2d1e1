"""ASGI middleware for every service's HTTP API: a correlation id per request (taken from
`X-Correlation-ID` when it is a UUID, else new; echoed in the response and carried by the
logs and the events the request causes), and request counts and latency by route."""

from __future__ import annotations

import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.logs import log_context
from shared.metrics import HTTP_REQUESTS, HTTP_SECONDS

_HEADER = b"x-correlation-id"


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        correlation_id = _correlation_id(scope)
        scope.setdefault("state", {})["correlation_id"] = correlation_id  # for the audit trail
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []),
                                      (_HEADER, correlation_id.encode())]
            await send(message)

        try:
            with log_context(correlation_id=correlation_id):
                await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            HTTP_REQUESTS.labels(scope["method"], path, str(status)).inc()
            HTTP_SECONDS.labels(scope["method"], path).observe(time.perf_counter() - started)


def _correlation_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == _HEADER:
            try:
                return str(uuid.UUID(value.decode("latin-1")))
            except ValueError:
                break
    return str(uuid.uuid4())
