"""Ways to hand a text to the network. The dispatcher only knows `SmsSender`."""

from __future__ import annotations

import logging
from typing import NamedTuple

import asyncpg

from services.notifier.store import Q
from services.notifier.twilio_errors import ErrorClass

log = logging.getLogger(__name__)


class OutgoingSms(NamedTuple):
    """A text to hand over (a NamedTuple: immutable, and made in a third of a frozen
    dataclass's time; the dispatcher makes one per text)."""

    text_id: int
    to: str
    body: str
    callback: bool = True
    """Ask for delivery receipts (naming the text); not for verification codes."""


class SendError(Exception):
    """The provider refused the text: `code` and what it means, and its class
    (`twilio_errors.ErrorClass`), which says what happens next."""

    def __init__(self, code: str, meaning: str, kind: ErrorClass):
        super().__init__(f"{code}: {meaning}")
        self.code = code
        self.meaning = meaning
        self.kind = kind

    @property
    def permanent(self) -> bool:
        """The text will not be sent again (the number or the message is at fault)."""
        return self.kind in (ErrorClass.NUMBER, ErrorClass.MESSAGE)


class SmsSender:
    """What the dispatcher sends through: it waits for its `turn`, checks the text still
    stands, then calls `send`. Subclasses implement `send`, and `turn` if they are paced."""

    pause_key: str | None = None
    """Names the sender when sending through it can be paused (an account or sender
    problem); None: it never pauses."""

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
        sid = f"LOCAL{sms.text_id:020d}"  # a verification code's (negative id): LOCAL-000...
        async with self.pool.acquire() as conn:
            await conn.execute(Q.record_sms, sms.text_id, sms.to, sms.body, sid)
        log.info("recorded text %d (%d chars) as %s", sms.text_id, len(sms.body), sid)
        return sid
