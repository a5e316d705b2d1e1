"""Who a client is behind a trusted reverse proxy."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from fastapi import Request


@lru_cache(maxsize=4096)
def is_trusted(peer: str, proxies: str) -> bool:
    """Whether `peer` is one of `proxies` (addresses or networks, comma-separated). Kept per
    (peer, proxies): every request asks it, and parsing both took a tenth of a millisecond."""
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    for entry in filter(None, (p.strip() for p in proxies.split(","))):
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def client_address(request: Request, proxies: str) -> str:
    """The peer's address, or, when the peer is a trusted proxy, the last address it put in
    X-Forwarded-For."""
    peer = request.client.host if request.client else "unknown"
    forwarded = request.headers.get("X-Forwarded-For", "")
    if forwarded and is_trusted(peer, proxies):
        last = forwarded.split(",")[-1].strip()
        try:
            return str(ipaddress.ip_address(last))
        except ValueError:
            return peer
    return peer
