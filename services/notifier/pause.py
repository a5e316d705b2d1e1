"""Sending paused for a sender: Twilio named an account or sender problem (bad credentials,
a suspended account, a from number not ours, trial limits...). Then every text would fail
the same way and no patient's number is at fault, so texts stay pending and wait.

The pause is a row of `sender_pauses`, so every instance holds its texts and the metrics
and `/ops/status` name it. It ends when a text gets through: a paused dispatcher sends one
text now and then (`claim_probe`: one instance at a time), so a fix on Twilio's side resumes
sending; and at start-up, so a restart with the right settings is enough."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from services.notifier import store
from services.notifier.store import Q

log = logging.getLogger(__name__)
REFRESH_EVERY = 1.0
"""Seconds between two reads of the pause (another instance may have set or ended it)."""


class Pause:
    """Whether sending through the sender named `key` is paused (None: it never pauses)."""

    def __init__(self, pool: asyncpg.Pool, key: str | None, probe_every: float = 60.0):
        self.pool = pool
        self.key = key
        self.probe_every = probe_every
        self.paused = False
        self.reason = ""
        self._read_at = float("-inf")

    async def forget(self) -> None:
        """At start-up: whatever paused sending before is taken as fixed (it pauses again at
        once if not)."""
        if self.key is not None:
            async with self.pool.acquire() as conn:
                await conn.execute(Q.resume_sender, self.key)
            self.paused = False

    async def refresh(self) -> None:
        """Read the pause again, at most every `REFRESH_EVERY` seconds."""
        now = asyncio.get_running_loop().time()
        if self.key is None or now - self._read_at < REFRESH_EVERY:
            return
        self._read_at = now
        async with self.pool.acquire() as conn:
            pause = await store.sender_pause(conn, self.key)
        self.paused = pause is not None
        if pause is not None:
            self.reason = f"sending paused: Twilio {pause.code} ({pause.meaning})"

    async def hold(self, code: str, meaning: str) -> None:
        """Pause sending (this instance at once, the others within `REFRESH_EVERY`)."""
        if self.key is None:
            return
        if not self.paused:
            log.error("sending paused: Twilio %s (%s); texts wait until it is fixed", code, meaning)
        self.paused, self.reason = True, f"sending paused: Twilio {code} ({meaning})"
        async with self.pool.acquire() as conn:
            await conn.execute(Q.pause_sender, self.key, code, meaning)

    async def resume(self) -> None:
        """A text got through: sending resumes."""
        if self.key is None:
            return
        self.paused = False
        async with self.pool.acquire() as conn:
            await conn.execute(Q.resume_sender, self.key)
        log.warning("sending resumed: a text got through")

    async def probe_now(self) -> bool:
        """Whether this instance sends one text now to see if the problem is gone."""
        async with self.pool.acquire() as conn:
            return await conn.fetchval(Q.claim_probe, self.key, self.probe_every) is not None

    async def probe_later(self) -> None:
        """The probe found no text to send: give its turn back."""
        async with self.pool.acquire() as conn:
            await conn.execute(Q.unclaim_probe, self.key, self.probe_every)
