"""The dispatcher: claims due texts with SKIP LOCKED, renders them from the current
appointment (so a text never quotes a stale time), sends, and records the result together
with its `SmsSent` event. Safe with several instances.

Exactly once, and its one gap. A text is (1) claimed: `status = 'sending'`, committed; (2)
handed to the provider; (3) its SID recorded with `status = 'sent'` and `SmsSent`, in one
transaction. A crash before (2) leaves a claim with no SID: after `stale_claim_seconds` it
is released and sent, once. A crash between Twilio accepting the request in (2) and the
commit of (3), a window of one HTTP response and one local transaction, cannot be told
apart from the first case: Twilio's Messages API has no idempotency key, so the text is sent
again when the claim is released. That window is the only way to a duplicate; Kafka
redelivery never sends one (texts are scheduled once per event, in the consumer's
transaction), and neither does a crash anywhere else.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime

import asyncpg

from services.notifier.handlers import Q, load_policy
from services.notifier.policy import CRITICAL, cap_windows
from services.notifier.schedule import QuietHours
from services.notifier.senders import OutgoingSms, SendError, SmsSender
from services.notifier.templates import TextContext, render, segments
from shared.events import Envelope
from shared.events.notifier import SmsFailed, SmsSent
from shared.outbox import enqueue
from shared.worker import listen_loop

log = logging.getLogger(__name__)
PRODUCER = "notifier"


class Dispatcher:
    def __init__(self, pool: asyncpg.Pool, sender: SmsSender, *, schema: str = "notifier",
                 batch_size: int = 200,
                 poll_seconds: float = 0.5, stale_claim_seconds: float = 300.0):
        self.pool = pool
        self.channel = f"{schema}_texts"
        self.sender = sender
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.stale_claim_seconds = stale_claim_seconds
        self._last_release = float("-inf")

    async def run(self) -> None:
        """Dispatch until cancelled; wakes when texts are scheduled, or after a short poll."""
        await listen_loop(self.pool, self.channel, self._step, "dispatcher")

    async def _step(self) -> float:
        now = asyncio.get_running_loop().time()
        if now - self._last_release > min(60.0, self.stale_claim_seconds):
            await self._release_stale()  # claims of a dispatcher that died
            self._last_release = now
        return 0.0 if await self.dispatch_once() == self.batch_size else self.poll_seconds

    async def _release_stale(self) -> None:
        async with self.pool.acquire() as conn:
            released = await conn.fetch(Q.release_stale_claims, self.stale_claim_seconds)
        if released:
            log.warning("released %d stale text claims", len(released))

    async def dispatch_once(self) -> int:
        """Claim and send one batch of due texts. Returns how many were claimed."""
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                ids = [r["id"] for r in await conn.fetch(Q.claim_due, self.batch_size)]
            if not ids:
                return 0
            rows = await conn.fetch(Q.text_context, ids)
        by_patient: dict = {}
        for row in rows:  # already in due order
            by_patient.setdefault(row["patient_id"], []).append(row)
        # one patient's texts go out in order (the first carries the STOP notice);
        # different patients' texts go out concurrently
        await asyncio.gather(*(self._send_in_order(texts) for texts in by_patient.values()))
        return len(ids)

    async def _send_in_order(self, rows: list[asyncpg.Record]) -> None:
        for row in rows:
            await self._send_one(row)

    async def _send_one(self, row: asyncpg.Record) -> None:
        reason = self._why_not(row) or await self._over_cap(row)
        if reason:
            status = "cancelled" if reason.startswith("appointment") else "skipped"
            async with self.pool.acquire() as conn:
                await conn.execute(Q.mark_not_sent, row["id"], status, reason)
            return
        to_driver = row["kind"] == "pickup"
        if to_driver:  # the ride contact: the STOP notice always, never the patient's number
            first, to = True, row["ride_contact_phone"]
        else:
            async with self.pool.acquire() as conn:
                first = bool(await conn.fetchval(Q.claim_stop_notice, row["patient_id"]))
            to = row["phone_e164"]
        body = render(row["kind"], TextContext(
            language=row["language"], clinic_name=row["clinic_name"],
            clinic_phone=row["clinic_phone"], site_name=row["site_name"],
            site_address=row["site_address"], timezone=row["site_timezone"],
            starts_at=row["starts_at"], fasting_rule=row["fasting_rule"],
            ends_at=row["ends_at"]), first_text=first)
        try:
            sid = await self.sender.send(OutgoingSms(row["id"], to, body))
        except SendError as exc:
            async with self.pool.acquire() as conn, conn.transaction():
                if first and not to_driver:
                    await conn.execute(Q.release_stop_notice, row["patient_id"])
                if exc.permanent:  # the number is marked: staff see it, no more attempts
                    await conn.execute(Q.mark_not_sent, row["id"], "failed", exc.code)
                    if not to_driver:
                        await conn.execute(Q.mark_number_problem, row["patient_id"], str(exc))
                    await enqueue(conn, [Envelope.new(
                        SmsFailed(text_id=row["id"], error_code=exc.code, permanent=True),
                        producer=PRODUCER, clinic_id=row["clinic_id"], patient_id=row["patient_id"])])
                else:  # exponential backoff with jitter
                    delay = min(300.0, 2.0 ** row["attempts"]) * (0.5 + random.random())
                    await conn.execute(Q.retry_later, row["id"], exc.code, delay)
            return
        n_segments = segments(body)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(Q.mark_sent, row["id"], sid, body, n_segments)
            await enqueue(conn, [Envelope.new(
                SmsSent(text_id=row["id"], kind=row["kind"], booking_id=row["booking_id"],
                        provider_sid=sid, segments=n_segments),
                producer=PRODUCER, clinic_id=row["clinic_id"], patient_id=row["patient_id"])])

    async def _over_cap(self, row: asyncpg.Record) -> str | None:
        """The clinic's daily/weekly caps (appointment-critical texts may pass them)."""
        if row["kind"] == "pickup" or row["site_timezone"] is None:
            return None
        async with self.pool.acquire() as conn:
            policy = await load_policy(conn, row["clinic_id"], QuietHours())
            if row["kind"] in CRITICAL and policy.critical_past_caps:
                return None
            day, week = cap_windows(datetime.now(UTC), row["site_timezone"])
            sent = await conn.fetchrow(Q.sent_since, row["patient_id"], day, week)
        if policy.capped(row["kind"], sent["today"], sent["week"]):
            return f"cap reached ({sent['today']} today, {sent['week']} in 7 days)"
        return None

    @staticmethod
    def _why_not(row: asyncpg.Record) -> str | None:
        """Why a claimed text must not go out now, or None if it may."""
        if row["kind"] == "pickup":  # to the ride contact, who agreed to texts
            if not row["ride_contact_phone"]:
                return "no ride contact who agreed to texts"
        elif row["phone_e164"] is None:
            return "no contact details for the patient"
        elif not row["sms_consent"]:
            return "patient has not consented to texts"
        elif row["opted_out"]:
            return "patient opted out"
        elif row["number_problem"]:
            return f"number cannot be texted ({row['number_problem']})"
        if row["booking_id"] is not None and row["kind"] != "missed":
            if row["appointment_status"] in ("cancelled", "noshow", "fulfilled"):
                return f"appointment {row['appointment_status']}"
            if row["booking_version"] != row["appointment_version"]:
                return "appointment was moved"
            if row["kind"] == "ride_reminder" and row["ride_status"] == "confirmed":
                return "ride already arranged"
        if row["kind"] == "waitlist_offer" and row["offer_status"] != "open":
            return "slot already taken"
        if datetime.now(UTC) > row["valid_until"]:
            return "too late to be useful"
        return None
