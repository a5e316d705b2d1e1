"""The picture of the whole system: every service's `/ops/status`, fetched over HTTP. The ops
CLI and the dashboard both build it with `gather_overview`, so they show the same numbers."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

STATUS_TIMEOUT = 10.0


def parse_peers(spec: str) -> dict[str, str]:
    """`"booking=http://h:8001,plans=..."` -> {"booking": "http://h:8001", ...}."""
    peers = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, url = part.partition("=")
        if not sep or not name or not url:
            raise ValueError(f"expected name=url in OPS_PEERS, got {part!r}")
        peers[name.strip()] = url.strip().rstrip("/")
    return peers


async def fetch_status(client: httpx.AsyncClient, name: str, url: str, token: str,
                       path: str = "/ops/status") -> dict[str, Any]:
    """One service's status (or its other ops document at `path`), or a report of why it
    could not be had."""
    try:
        response = await client.get(f"{url}{path}", headers={"X-Ops-Token": token})
    except httpx.HTTPError as exc:
        return {
            "service": name,
            "healthy": False,
            "problems": [f"unreachable: {type(exc).__name__}"],
        }
    if response.status_code != 200:
        return {"service": name, "healthy": False,
                "problems": [f"{path} answered {response.status_code}"]}
    answer: dict[str, Any] = response.json()
    return answer


async def gather_overview(peers: dict[str, str], token: str) -> dict[str, Any]:
    """Every peer's status, fetched concurrently, and whether the whole system is healthy."""
    async with httpx.AsyncClient(timeout=STATUS_TIMEOUT) as client:
        reports = await asyncio.gather(
            *(fetch_status(client, n, u, token) for n, u in peers.items())
        )
    services = dict(zip(peers, reports, strict=True))
    problems = [f"{name}: {p}" for name, r in services.items() for p in r.get("problems", [])]
    return {"healthy": not problems, "problems": problems, "services": services}


async def gather_histories(peers: dict[str, str], token: str) -> dict[str, Any]:
    """Every peer's figures over the last hour (`/ops/history`), fetched concurrently."""
    async with httpx.AsyncClient(timeout=STATUS_TIMEOUT) as client:
        answers = await asyncio.gather(*(fetch_status(client, n, u, token, "/ops/history")
                                         for n, u in peers.items()))
    return {"services": dict(zip(peers, answers, strict=True))}
