"""Delivery receipts: queued -> sending -> sent -> delivered | undelivered | failed.

Applied once each and out-of-order safe (a status never goes back). Each text's callback URL
carries its id, so a receipt for a SID not stored yet records the text as sent: Twilio took
it, and the dispatcher died before recording it (or has not committed yet). That is how the
dispatcher's crash window closes (see `dispatcher`). A receipt naming no text we know is kept
(`early_receipts`) and applied when its SID is stored.

An `undelivered`/`failed` receipt's error code is classified by the same table as the
Messages API's errors (`twilio_errors`): an account or sender problem pauses sending and the
text goes back to pending; a number problem marks the number; a message problem fails only
that text; a passing one sends the text again with backoff (while still useful), and 30003
(unreachable handset) marks the number once it came `unreachable_marks_after` times in a row
(a delivered text ends the streak); an unknown code is retried like a passing one for
`UNKNOWN_ATTEMPTS` tries in all."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from services.notifier import store
from services.notifier.inbox import refused_number
from services.notifier.outcomes import retry_delay
from services.notifier.settings import NotifierSettings
from services.notifier.store import PRODUCER, Q, ReceiptText
from services.notifier.twilio_errors import UNKNOWN_ATTEMPTS, UNREACHABLE, ErrorClass, classify
from services.notifier.twilio_sender import pause_key as twilio_pause_key
from shared import tracing
from shared.db import Connection
from shared.events import Envelope, Event
from shared.events.notifier import SmsDelivered, SmsFailed, SmsSent
from shared.outbox import enqueue

log = logging.getLogger(__name__)
RANK = {"accepted": 0, "queued": 0, "scheduled": 0, "sending": 1, "sent": 2, "delivered": 3,
        "undelivered": 3, "failed": 3, "canceled": 3, "read": 4}


async def apply_receipt(conn: Connection, sid: str, status: str, error: str | None,
                        text_id: int | None = None, *, pause_key: str | None = None,
                        unreachable_marks_after: int = 3) -> bool:
    """Record one receipt in the caller's transaction, with its event (`SmsDelivered`,
    `SmsFailed`). `text_id`: the text the callback URL names. A text whose SID was not stored
    yet is recorded as sent (with `SmsSent`). A failed delivery is acted on by its error's
    class (`pause_key`: the sender to pause). Returns False if no text is known for the
    receipt (it is then kept for later)."""
    text = await store.text_by_sid(conn, sid)
    if text is None and text_id is not None:
        text = await _sent_per_receipt(conn, text_id, sid)
    if text is None:
        await conn.execute(Q.keep_early_receipt, sid, status, error)
        return False
    if tracing.enabled():  # a span linked to the text's trace (the send it tells of)
        with tracing.tracer().start_as_current_span(
                "notifier delivery receipt", links=tracing.link(text.trace_context),
                attributes={"kcb.text_id": text.id, "kcb.provider_sid": sid,
                            "kcb.delivery_status": status, "kcb.error_code": error or ""}):
            await _apply(conn, text, sid, status, error, pause_key, unreachable_marks_after)
    else:
        await _apply(conn, text, sid, status, error, pause_key, unreachable_marks_after)
    return True


async def _apply(conn: Connection, text: ReceiptText, sid: str, status: str,
                 error: str | None, pause_key: str | None, unreachable_marks_after: int) -> None:
    if RANK.get(status, -1) <= RANK.get(text.delivery_status or "", -1):
        return  # a repeat, or older than what we know
    await conn.execute(Q.update_delivery, text.id, status, error)
    out: list[Event] = []
    if status in ("delivered", "read"):
        out.append(SmsDelivered(text_id=text.id, provider_sid=sid))
        if status == "delivered" and text.phone:
            await conn.execute(Q.reachable, text.phone)
    elif status in ("undelivered", "failed"):
        permanent = await _undelivered(conn, text, error, pause_key, unreachable_marks_after)
        out.append(SmsFailed(text_id=text.id, provider_sid=sid, error_code=error or "unknown",
                             permanent=permanent))
    await enqueue(conn, [Envelope.new(p, producer=PRODUCER, clinic_id=text.clinic_id,
                                      patient_id=text.patient_id) for p in out])


async def _sent_per_receipt(conn: Connection, text_id: int,
                            sid: str) -> ReceiptText | None:
    """The receipt's callback URL names a text whose SID is not stored: record it as sent
    (with `SmsSent`) if it was handed over; the text with its new SID, or None."""
    sent = await store.sent_per_receipt(conn, text_id, sid)
    if sent is None:
        return None
    log.info("text %d recorded as sent from its receipt", text_id)
    await enqueue(conn, [Envelope.new(
        SmsSent(text_id=sent.id, kind=sent.kind, booking_id=sent.booking_id, provider_sid=sid,
                segments=sent.segments),
        producer=PRODUCER, clinic_id=sent.clinic_id, patient_id=sent.patient_id)])
    return await store.text_by_sid(conn, sid)


def receipt_rules(settings: NotifierSettings) -> dict[str, Any]:
    """`apply_receipt`'s keywords from the notifier's settings: the Twilio sender a receipt
    may pause (None without Twilio) and how many 30003s in a row mark a number."""
    return {"pause_key": twilio_pause_key(settings) if settings.twilio_account_sid else None,
            "unreachable_marks_after": settings.unreachable_marks_after}


async def _undelivered(conn: Connection, text: ReceiptText, error: str | None,
                       pause_key: str | None, unreachable_marks_after: int) -> bool:
    """Act on a text Twilio could not deliver, by its error's class; return whether it will
    not be sent again (the number or the message is at fault)."""
    kind, meaning = classify(error)
    number = text.phone
    if kind is ErrorClass.TRANSIENT and error == str(UNREACHABLE) and number:
        times = await conn.fetchval(Q.count_unreachable, number)
        if times >= unreachable_marks_after:
            kind, meaning = ErrorClass.NUMBER, f"{meaning}, {times} times in a row"
    if kind is ErrorClass.NUMBER:
        if number:
            await refused_number(conn, number, str(error), f"{meaning} (Twilio {error})")
        return True
    if kind is ErrorClass.MESSAGE:
        return True
    if kind is ErrorClass.SENDER:
        if pause_key is not None:
            log.error("sending paused: Twilio %s (%s) in a delivery receipt", error, meaning)
            await conn.execute(Q.pause_sender, pause_key, error, meaning)
        await conn.execute(
            Q.send_again, text.id, 0.0, f"sending paused: Twilio {error} ({meaning})"
        )
    elif kind is ErrorClass.TRANSIENT or text.attempts < UNKNOWN_ATTEMPTS:
        await conn.execute(Q.send_again, text.id, retry_delay(text.attempts),
                           f"undelivered: Twilio {error} ({meaning}); sent again")
    return False


async def apply_early_receipts(pool: asyncpg.Pool, **rules: Any) -> int:
    """Apply the kept receipts whose SID is now stored; returns how many. `rules`: see
    `apply_receipt`."""
    async with pool.acquire() as conn, conn.transaction():
        kept = await store.take_early_receipts(conn)  # those never taken: see retention.sql
        for r in sorted(kept, key=lambda r: (r.received_at, RANK.get(r.status, -1))):
            await apply_receipt(conn, r.provider_sid, r.status, r.error_code, **rules)
    if kept:
        log.info("applied %d delivery receipts that came before their SID was stored", len(kept))
    return len(kept)
