"""Verification codes for the public booking page: booking's `OnlineCodeRequested` becomes
one text, sent at once through the configured sender (Twilio, or the recording sender).

Not through the dispatcher's schedule: the visitor asked for the code a second ago and waits
for it, so it is sent while the event is handled (a redelivered event finds its row and
sends nothing), and quiet hours do not hold it (the visitor's own request, answered at
once). A number that opted out gets nothing, as with every other text. Neither the number
nor the code is stored here, and the log names only the request."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from services.notifier.senders import OutgoingSms, SendError, SmsSender
from shared.consumer import Handler
from shared.db import Connection, Queries
from shared.events import Envelope
from shared.events.booking import OnlineCodeRequested
from shared.sms import gsm_fold

log = logging.getLogger(__name__)
Q = Queries(Path(__file__).with_name("codes.sql"))

CODE_TEXT = {
    "en": "{clinic}: your code is {code}. It expires in 10 minutes. If you did not ask for it, ignore this text.",
    "fr": "{clinic}: votre code est {code}. Il expire dans 10 minutes. Si vous ne l'avez pas demandé, ignorez ce texto.",
    "es": "{clinic}: su código es {code}. Vence en 10 minutos. Si no lo pidió, ignore este mensaje.",
}


def code_text(language: str, clinic: str, code: str) -> str:
    """The code's text in the visitor's language (GSM-7, one segment)."""
    return gsm_fold(CODE_TEXT.get(language, CODE_TEXT["en"]).format(clinic=clinic, code=code))


def handler(sender_of: Callable[[], SmsSender]) -> Handler:
    """The handler of `OnlineCodeRequested`, sending through the sender `sender_of` gives
    (made when the first code goes: the database pool is open by then)."""

    async def on_code_requested(conn: Connection, env: Envelope[OnlineCodeRequested]) -> None:
        p = env.payload
        text_id = await conn.fetchval(Q.start_verification_text, p.request_id, env.clinic_id)
        if text_id is None:
            return  # handled before (a redelivery)
        if p.expires_at <= datetime.now(UTC):
            return await _settle(conn, text_id, "skipped", "expired before it could be sent")
        if await conn.fetchval(Q.number_opted_out, p.phone_e164):
            return await _settle(conn, text_id, "skipped", "number opted out")
        body = code_text(p.language, p.clinic_sms_name or p.clinic_name, p.code)
        try:
            # negative ids: never a text of the `texts` table (no status callback either)
            sid = await sender_of().send(OutgoingSms(-text_id, p.phone_e164, body, callback=False))
        except SendError as exc:
            log.warning("verification code of request %s not sent: %s", p.request_id, exc.code)
            return await _settle(conn, text_id, "failed", f"{exc.code}: {exc.meaning}")
        log.info("verification code of request %s sent as %s", p.request_id, sid)
        await _settle(conn, text_id, "sent", None, sid)

    return on_code_requested


async def _settle(conn: Connection, text_id: int, status: str, reason: str | None,
                  sid: str | None = None) -> None:
    await conn.execute(Q.settle_verification_text, text_id, status, reason, sid)
