"""The loop of a background worker that waits on PostgreSQL notifications."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from shared.db import Connection

log = logging.getLogger(__name__)


async def listen_loop(pool: asyncpg.Pool, channel: str, step: Callable[[], Awaitable[float]],
                      name: str,
                      on_connect: Callable[[Connection], None] | None = None) -> None:
    """Run `step()` until cancelled. It returns how long it may sleep (0: run again at once);
    a NOTIFY on `channel` wakes it early; a lost connection restarts the loop. The listening
    connection is held from `pool`: a direct one (LISTEN needs a session of its own, which a
    PgBouncer in transaction mode does not give); `step` does its work through its own pool.
    `on_connect(conn)` is told of each listening connection as the loop takes it."""
    wake = asyncio.Event()

    def on_notify(*_: object) -> None:
        wake.set()

    while True:
        try:
            async with pool.acquire() as conn:
                await conn.add_listener(channel, on_notify)
                if on_connect is not None:
                    on_connect(conn)
                try:
                    while True:
                        wake.clear()
                        sleep = await step()
                        if sleep > 0:
                            with contextlib.suppress(TimeoutError):
                                await asyncio.wait_for(wake.wait(), sleep)
                finally:
                    with contextlib.suppress(Exception):  # keep a cancellation in flight
                        await conn.remove_listener(channel, on_notify)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s restarting after %s", name, type(exc).__name__)
            await asyncio.sleep(1.0)
