"""Delivery receipts: queued -> sending -> sent -> delivered | undelivered | failed.

Applied once each and out-of-order safe (a status never goes back). Each text's callback URL
carries its id, so a receipt for a SID not stored yet records the text as sent: Twilio took
it, and the dispatcher died before recording it (or has not committed yet). That is how the
dispatcher's crash window closes (see `dispatcher`). A receipt naming no text we know is kept
(`early_receipts`) and applied when its SID is stored."""

from __future__ import annotations

import logging

import asyncpg

from services.notifier.handlers import PRODUCER, Q
from services.notifier.twilio_sender import PERMANENT
from shared.events import Envelope
from shared.events.notifier import SmsDelivered, SmsFailed, SmsSent
from shared.outbox import enqueue

log = logging.getLogger(__name__)
RANK = {"accepted": 0, "queued": 0, "scheduled": 0, "sending": 1, "sent": 2, "delivered": 3,
        "undelivered": 3, "failed": 3, "canceled": 3, "read": 4}


async def apply_receipt(conn: asyncpg.Connection, sid: str, status: str, error: str | None,
                        text_id: int | None = None) -> bool:
    """Record one receipt in the caller's transaction, with its event (`SmsDelivered`,
    `SmsFailed`). `text_id`: the text the callback URL names. A text whose SID was not stored
    yet is recorded as sent (with `SmsSent`). Returns False if no text is known for the
    receipt (it is then kept for later)."""
    text = await conn.fetchrow(Q.text_by_sid, sid)
    if text is None and text_id is not None:
        sent = await conn.fetchrow(Q.sent_per_receipt, text_id, sid)
        if sent is not None:
            log.info("text %d recorded as sent from its receipt", text_id)
            await enqueue(conn, [Envelope.new(
                SmsSent(text_id=sent["id"], kind=sent["kind"], booking_id=sent["booking_id"],
                        provider_sid=sid, segments=sent["segments"]),
                producer=PRODUCER, clinic_id=sent["clinic_id"], patient_id=sent["patient_id"])])
            text = await conn.fetchrow(Q.text_by_sid, sid)
    if text is None:
        await conn.execute(Q.keep_early_receipt, sid, status, error)
        return False
    if RANK.get(status, -1) <= RANK.get(text["delivery_status"] or "", -1):
        return True  # a repeat, or older than what we know
    await conn.execute(Q.update_delivery, text["id"], status, error)
    out = []
    if status in ("delivered", "read"):
        out.append(SmsDelivered(text_id=text["id"], provider_sid=sid))
    elif status in ("undelivered", "failed"):
        permanent = error is not None and error.isdigit() and int(error) in PERMANENT
        if permanent:
            await conn.execute(Q.mark_number_problem, text["patient_id"], PERMANENT[int(error)])
        out.append(SmsFailed(text_id=text["id"], provider_sid=sid, error_code=error or "unknown",
                             permanent=permanent))
    await enqueue(conn, [Envelope.new(p, producer=PRODUCER, clinic_id=text["clinic_id"],
                                      patient_id=text["patient_id"]) for p in out])
    return True


async def apply_early_receipts(pool: asyncpg.Pool) -> int:
    """Apply the kept receipts whose SID is now stored; returns how many."""
    async with pool.acquire() as conn, conn.transaction():
        kept = await conn.fetch(Q.take_early_receipts)  # those never taken: see retention.sql
        for r in sorted(kept, key=lambda r: (r["received_at"], RANK.get(r["status"], -1))):
            await apply_receipt(conn, r["provider_sid"], r["status"], r["error_code"])
    if kept:
        log.info("applied %d delivery receipts that came before their SID was stored", len(kept))
    return len(kept)
