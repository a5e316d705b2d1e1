"""The console's only way to clinical data: the three services' public HTTP APIs, called with
the signed-in person's own token (so each service checks their role and network, and records
them as the actor). Each page counts its calls (`X-Console-Service-Calls`): a page costs at
most 3."""

from __future__ import annotations

import logging
from typing import Any

import httpx
from fastapi import Request

from services.console.settings import ConsoleSettings
from shared.proxies import client_address

log = logging.getLogger(__name__)
SERVICES = ("booking", "plans", "notifier")


class ServiceError(Exception):
    """A service refused or failed a call: its status and its error body."""

    def __init__(self, service: str, status: int, body: Any) -> None:
        super().__init__(f"{service} answered {status}")
        self.service = service
        self.status = status
        self.body = body if isinstance(body, dict) else {}

    @property
    def message(self) -> str:
        return str(self.body.get("message") or self.body.get("detail") or "")

    @property
    def field(self) -> str | None:
        field = self.body.get("field")
        if field is None and self.body.get("fields"):
            field = self.body["fields"][0].get("path", "").removeprefix("body.")
        return field


class Services:
    """HTTP clients of the three services (one connection pool each, for the process)."""

    def __init__(
        self, settings: ConsoleSettings,
        transports: dict[str, httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        transports = transports or {}
        self.clients = {
            name: httpx.AsyncClient(base_url=getattr(settings, f"{name}_url"),
                                    timeout=settings.service_timeout_seconds,
                                    transport=transports.get(name))
            for name in SERVICES}

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()

    async def call(self, method: str, service: str, path: str, *, token: str | None = None,
                   request: Request | None = None, **kwargs: Any) -> Any:
        """One call; the JSON answer, or `ServiceError`. Counted on `request` (a page's
        budget) when given."""
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if request is not None:
            request.state.service_calls = getattr(request.state, "service_calls", 0) + 1
        response = await self.clients[service].request(method, path, headers=headers, **kwargs)
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {}
            if response.status_code >= 500:
                log.error("%s %s answered %s", service, method, response.status_code)
            raise ServiceError(service, response.status_code, body)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    # sign-in (booking), before and outside a page's budget
    async def sign_in(self, body: dict[str, Any], address: str) -> dict[str, Any]:
        value: dict[str, Any] = await self.call("POST", "booking", "/auth/sign-in", json=body,
                                                headers={"X-Forwarded-For": address})
        return value

    async def refresh(self, token: str) -> dict[str, Any]:
        value: dict[str, Any] = await self.call("POST", "booking", "/auth/refresh", token=token)
        return value

    async def sign_out(self, token: str) -> None:
        await self.call("POST", "booking", "/auth/sign-out", token=token)


class Api:
    """The services as one signed-in person calls them during one request."""

    def __init__(self, request: Request, token: str) -> None:
        self.request = request
        self.token = token
        self.services: Services = request.app.state.services

    def _forwarded(self) -> dict[str, str]:
        """The person's address, for the services' audit trails (they trust the console's
        X-Forwarded-For when it is in their `TRUSTED_PROXIES`)."""
        proxies = self.request.app.state.runtime.settings.trusted_proxies
        return {"X-Forwarded-For": client_address(self.request, proxies)}

    async def get(self, service: str, path: str, **params: Any) -> Any:
        params = {k: v for k, v in params.items() if v is not None}
        return await self.services.call("GET", service, path, token=self.token,
                                        request=self.request, params=params,
                                        headers=self._forwarded())

    async def post(self, service: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return await self.services.call("POST", service, path, token=self.token,
                                        request=self.request, json=body or {},
                                        headers=self._forwarded())
