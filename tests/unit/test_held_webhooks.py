"""Held webhooks (services/notifier/held.py) against an in-memory pool whose database can be
out: applied in arrival order once it is back, a bug drops only its own entry, a full queue
drops the newest. The real path (PostgreSQL ending the session, Twilio's signed requests) is
in tests/test_twilio.py."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from services.notifier.held import HeldWebhooks


class OutagePool:
    """A pool whose connections fail with a lost connection while `out`."""

    def __init__(self) -> None:
        self.out = True
        self.tries = 0

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        self.tries += 1
        if self.out:
            raise asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed")
        yield self

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        yield


async def until(check, seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        while not check():
            await asyncio.sleep(0.01)


@pytest.fixture
async def running() -> AsyncIterator[tuple[HeldWebhooks, OutagePool, list[str]]]:
    held, pool, done = HeldWebhooks(limit=3), OutagePool(), []
    task = asyncio.create_task(held.run(pool, first_wait=0.01))  # type: ignore[arg-type]
    yield held, pool, done
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def recording(done: list[str], name: str):
    async def work(conn: Any) -> None:
        done.append(name)
    return work


async def test_held_work_waits_while_the_database_is_out_then_goes_in_arrival_order(running):
    held, pool, done = running
    held.hold("receipt", recording(done, "first"))
    held.hold("inbound", recording(done, "second"))
    await until(lambda: pool.tries >= 3)
    assert done == [] and held.waiting() == Counter({"receipt": 1, "inbound": 1})
    pool.out = False
    await until(lambda: len(done) == 2)
    assert done == ["first", "second"]
    assert held.applied == Counter({"receipt": 1, "inbound": 1}) and held.waiting() == Counter()


async def test_work_that_fails_for_another_reason_is_dropped_and_the_rest_goes(running):
    held, pool, done = running
    pool.out = False

    async def bug(conn: Any) -> None:
        raise ValueError("a bug, not an outage")

    held.hold("receipt", bug)
    held.hold("receipt", recording(done, "next"))
    await until(lambda: done == ["next"])
    assert held.dropped == Counter({"receipt": 1}) and held.applied == Counter({"receipt": 1})


async def test_past_its_limit_the_newest_is_dropped_and_counted(running):
    held, pool, done = running
    for name in ("a", "b", "c", "d"):
        held.hold("inbound", recording(done, name))
    assert held.dropped == Counter({"inbound": 1})
    pool.out = False
    await until(lambda: len(done) == 3)
    assert done == ["a", "b", "c"]
