"""Verification codes for the public booking page: booking's `OnlineCodeRequested` becomes
one text, sent at once through the configured sender (Twilio, or the recording sender).

Not through the dispatcher's schedule: the visitor asked for the code a second ago and waits
for it, and quiet hours do not hold it (the visitor's own request, answered at once). Nor
while the consumer's batch waits: the handler only queues the code (a row of
`verification_texts`, once per request: a redelivered event finds its row and queues
nothing), and the code sender, woken by the row's NOTIFY, sends each waiting code on a task
of its own, so a slow provider answer holds up neither the other events of the batch nor the
other codes. A code claimed by a sender that stopped before settling it is sent after
`RECLAIM_SECONDS`.

The code arrives sealed (`shared.sealed`, the key booking and the notifier share:
`ONLINE_CODE_KEY`) and is opened only to write the text; the row keeps the sealed form until
the text is settled, then neither the number nor the code. A number that opted out gets
nothing, as with every other text. The log names only the request."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from services.notifier.senders import OutgoingSms, SendError, SmsSender
from shared.db import Connection, Queries
from shared.events import Envelope
from shared.events.booking import OnlineCodeRequested
from shared.sealed import SealError, unseal
from shared.sms import gsm_fold
from shared.worker import listen_loop

log = logging.getLogger(__name__)
Q = Queries(Path(__file__).with_name("codes.sql"))
BATCH = 50
"""Codes claimed at one look."""
RECLAIM_SECONDS = 60.0
"""A claimed code not settled after this long (its sender stopped) is sent again."""
POLL_SECONDS = 5.0
"""Longest sleep between two looks when no NOTIFY comes."""

CODE_TEXT = {
    "en": "{clinic}: your code is {code}. It expires in 10 minutes. If you did not ask for it, ignore this text.",
    "fr": "{clinic}: votre code est {code}. Il expire dans 10 minutes. Si vous ne l'avez pas demandé, ignorez ce texto.",
    "es": "{clinic}: su código es {code}. Vence en 10 minutos. Si no lo pidió, ignore este mensaje.",
}


def code_text(language: str, clinic: str, code: str) -> str:
    """The code's text in the visitor's language (GSM-7, one segment)."""
    return gsm_fold(CODE_TEXT.get(language, CODE_TEXT["en"]).format(clinic=clinic, code=code))


async def on_code_requested(conn: Connection, env: Envelope[OnlineCodeRequested]) -> None:
    """The handler of `OnlineCodeRequested`: the sealed code waits for the code sender (in
    the consumer's transaction: its NOTIFY goes when the batch commits)."""
    p = env.payload
    await conn.execute(Q.queue_verification_text, p.request_id, env.clinic_id, p.phone_e164,
                       p.sealed_code, p.language, p.clinic_sms_name or p.clinic_name,
                       p.expires_at)


class CodeSender:
    """Sends the codes waiting in `verification_texts`, each on its own task."""

    def __init__(self, pool: asyncpg.Pool, sender: SmsSender, key: str, *,
                 schema: str = "notifier", reclaim_seconds: float = RECLAIM_SECONDS,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        """`key`: what the codes were sealed with (ONLINE_CODE_KEY); `clock`: the time codes
        are checked for expiry at."""
        self.pool = pool
        self.sender = sender
        self.key = key
        self.channel = f"{schema}_codes"
        self.reclaim_seconds = reclaim_seconds
        self.clock = clock
        self.sending: set[asyncio.Task[None]] = set()

    async def run(self, listen_pool: asyncpg.Pool) -> None:
        """Send codes until cancelled (woken by each queued code; `listen_pool`: direct
        sessions, for LISTEN); the sends under way are cancelled with it."""
        try:
            await listen_loop(listen_pool, self.channel, self.step, "code sender")
        finally:
            for task in self.sending:
                task.cancel()
            await asyncio.gather(*self.sending, return_exceptions=True)

    async def step(self) -> float:
        """Claim the waiting codes and start sending each; how long to sleep before the next
        look (unless a code is queued meanwhile)."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(Q.claim_verification_texts, BATCH, self.reclaim_seconds)
        for row in rows:
            task = asyncio.create_task(self._send(row))
            self.sending.add(task)
            task.add_done_callback(self.sending.discard)
        return 0.0 if len(rows) == BATCH else min(POLL_SECONDS, self.reclaim_seconds)

    async def _send(self, row: asyncpg.Record) -> None:
        """Send one code and settle its row (a database error leaves it claimed: it is
        sent again after `reclaim_seconds`)."""
        try:
            status, reason, sid = await self._outcome(row)
            async with self.pool.acquire() as conn:
                await conn.execute(Q.settle_verification_text, row["id"], status, reason, sid)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("verification code of request %s not settled: %s", row["request_id"],
                        type(exc).__name__)

    async def _outcome(self, row: asyncpg.Record) -> tuple[str, str | None, str | None]:
        """(status, reason, sid) of one code: skipped, failed or sent."""
        if row["expires_at"] <= self.clock():
            return "skipped", "expired before it could be sent", None
        async with self.pool.acquire() as conn:
            if await conn.fetchval(Q.number_opted_out, row["phone_e164"]):
                return "skipped", "number opted out", None
        try:
            code = unseal(self.key, row["sealed_code"])
        except SealError:
            log.warning("verification code of request %s cannot be opened: is ONLINE_CODE_KEY "
                        "booking's?", row["request_id"])
            return "failed", "sealed with another key", None
        body = code_text(row["language"], row["clinic_name"], code)
        try:
            # negative ids: never a text of the `texts` table (no status callback either)
            sid = await self.sender.send(OutgoingSms(-row["id"], row["phone_e164"], body,
                                                     callback=False))
        except SendError as exc:
            log.warning("verification code of request %s not sent: %s", row["request_id"],
                        exc.code)
            return "failed", f"{exc.code}: {exc.meaning}", None
        log.info("verification code of request %s sent as %s", row["request_id"], sid)
        return "sent", None, sid
