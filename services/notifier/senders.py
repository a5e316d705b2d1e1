"""Ways to hand a text to the network. The dispatcher only knows `SmsSender`."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutgoingSms:
    text_id: int
    to: str
    body: str


class SendError(Exception):
    """The provider refused the text. `permanent` errors are not retried."""

    def __init__(self, code: str, message: str, *, permanent: bool):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.permanent = permanent


class SmsSender:
    """What the dispatcher sends through: it waits for its `turn`, checks the text still
    stands, then calls `send`. Subclasses implement `send`, and `turn` if they are paced."""

    async def turn(self, segments: int) -> bool:
        """Wait until the sender may take `segments` more segments (at once by default);
        return whether it had to wait (the text is then checked again before it goes)."""
        return False

    async def send(self, sms: OutgoingSms) -> str:
        """Send `sms`; return the provider's message id. Raises `SendError`."""
        raise NotImplementedError


class RecordingSender(SmsSender):
    """Used when no Twilio credentials are configured: records each text in the
    `recorded_sms` table (one row per text, so a retry never records twice) and logs a
    line without the number or the body."""

    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool

    async def send(self, sms: OutgoingSms) -> str:
        sid = f"LOCAL{sms.text_id:020d}"
        async with self.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO recorded_sms (text_id, to_e164, body, sid) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (text_id) DO NOTHING", sms.text_id, sms.to, sms.body, sid)
        log.info("recorded text %d (%d chars) as %s", sms.text_id, len(sms.body), sid)
        return sid
