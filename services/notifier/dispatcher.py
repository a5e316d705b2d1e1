"""The dispatcher: claims due texts with SKIP LOCKED, renders them from the current
appointment, checks that each one still stands when it goes (so a text never quotes a stale
time), sends, and records the result together with its `SmsSent` event. Safe with several
instances.

Exactly once, and its one gap. A text is (1) claimed, in one transaction: picked with
`FOR UPDATE SKIP LOCKED` together with everything it depends on (contact, appointment,
policy), checked (not cancelled, moved or over, not in quiet hours, not too late), rendered,
and stored as `status = 'sending'` with its body, marked as handed over (it may reach the
provider within milliseconds) and with the claim's time as its token; (2) if the sender's
pacing made it wait for its turn, checked again in one statement just before the provider
call (claim still this dispatcher's, appointment not moved or over, number not opted out),
which refreshes its handed-over time; then handed to the provider, with a status callback
URL naming the text; (3) its SID recorded with `status = 'sent'` and its `SmsSent` event,
in one statement, only if the claim is still this dispatcher's. Claims carry the backend
pid of the dispatcher's listening connection: when the dispatcher dies, PostgreSQL drops the
connection, and once `callback_grace_seconds` have passed the other instances (or its
successor) release its claims that have no SID, and they are sent, once. A crash between
Twilio accepting a request and the commit of (3), a window of one HTTP response and one
local statement, is closed by Twilio's first status callback: it names the text, so the text
is recorded as sent with its SID (`receipts`) and never sent again, if it comes within the
grace time. What remains is the narrow window's narrow case: a crash there with no callback
reaching the notifier before the claim is released (no status callback URL configured, or
every callback lost for the grace time): Twilio's Messages API has no idempotency key, so
the text is sent again. A claim older than `stale_claim_seconds` is released whatever (a
stuck dispatcher; its claim token then keeps it from sending). Kafka redelivery never sends
a duplicate (texts are scheduled once per event, in the consumer's transaction), a slow
dispatcher never races another one for the same text (the claim tokens), and no other crash
does.

A batch is set-based: one query picks it with its context, one statement claims it (and
settles the texts that must not go out now: cancelled, skipped, or held until quiet hours
end; and hands out the "reply STOP" notices). Then each patient's texts are sent in order,
different patients' concurrently (the sender paces them), and each result is recorded (3)
as soon as the provider answers. The checks of (2) and the records of (3) are grouped: each
waits at most for the statement under way, then goes with all that arrived meanwhile, so
(3) is never more than about two local statements behind the provider's answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg

from services.notifier.handlers import PRODUCER, Q
from services.notifier.outcomes import Coalesced, Outcomes, Results
from services.notifier.pause import Pause
from services.notifier.policy import CRITICAL, Policy, policy_from
from services.notifier.receipts import apply_early_receipts
from services.notifier.schedule import QuietHours, move
from services.notifier.senders import OutgoingSms, SendError, SmsSender
from services.notifier.templates import TextContext, render, segments
from services.notifier.twilio_errors import ErrorClass
from shared.events import Envelope
from shared.worker import listen_loop

log = logging.getLogger(__name__)
CRITICAL_KINDS = sorted(CRITICAL)
MAX_BATCHES = 2
"""Batches a running dispatcher has texts of still to hand to the sender (pacing may hold
them) before it claims another. A batch whose texts have all been handed over no longer
counts: a slow provider call (one hanging until its timeout) holds up nothing else."""
RELEASE_EVERY = 5.0
"""Seconds between two looks for claims of dispatchers that died (or are stuck)."""
RECHECK_AFTER = 1.0
"""Seconds after which a text whose turn came without waiting is checked again anyway (an
event loop held up); a text that waited for its turn always is."""
RECEIPTS_EVERY = 2.0
"""Seconds between two looks for delivery receipts that came before their SID was stored."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Dispatcher:
    def __init__(self, pool: asyncpg.Pool, sender: SmsSender, *, schema: str = "notifier",
                 batch_size: int = 200, poll_seconds: float = 0.5,
                 stale_claim_seconds: float = 300.0, callback_grace_seconds: float = 60.0,
                 quiet: QuietHours = QuietHours(), clock: Callable[[], datetime] = _utc_now,
                 probe_seconds: float = 60.0, unreachable_marks_after: int = 3):
        """`quiet`: the quiet hours of clinics that set none (the service's setting);
        `clock`: the time texts are checked at (tests give literal times); `probe_seconds`:
        how often a paused sender is tried with one text; `unreachable_marks_after`: see
        `receipts`."""
        self.pool = pool
        self.channel = f"{schema}_texts"
        self.sender = sender
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.stale_claim_seconds = stale_claim_seconds
        self.callback_grace_seconds = callback_grace_seconds
        self.owner: int | None = None
        """The backend pid of the listening connection: it marks this dispatcher's claims."""
        self.quiet = quiet
        self.clock = clock
        self.pause = Pause(pool, sender.pause_key, probe_seconds)
        self.unreachable_marks_after = unreachable_marks_after
        self._last_release = self._last_receipts = float("-inf")
        self._sending: dict[asyncio.Task, Handing] = {}
        self._progress = asyncio.Event()  # a batch handed over its last text, or ended

    async def run(self) -> None:
        """Dispatch until cancelled; wakes when texts are scheduled, when the next one falls
        due, or after a short poll. Up to `MAX_BATCHES` batches are handed over at once."""
        try:
            await self.pause.forget()  # a restart with the right settings fixes a pause
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("could not clear the sender's pause at start: %s", type(exc).__name__)
        try:
            await listen_loop(self.pool, self.channel, self._step, "dispatcher",
                              on_connect=lambda conn: setattr(self, "owner",
                                                              conn.get_server_pid()))
        finally:
            for task in self._sending:
                task.cancel()
            await asyncio.gather(*self._sending, return_exceptions=True)

    async def _step(self) -> float:
        now = asyncio.get_running_loop().time()
        if now - self._last_release > RELEASE_EVERY:
            await self._release_stale()  # claims of a dispatcher that died
            self._last_release = now
        if now - self._last_receipts > RECEIPTS_EVERY:
            await apply_early_receipts(self.pool, pause_key=self.sender.pause_key,
                                       unreachable_marks_after=self.unreachable_marks_after)
            self._last_receipts = now
        await self.pause.refresh()
        if self.pause.paused:  # an account or sender problem: one text now and then
            if not await self.pause.probe_now():
                return self.poll_seconds
            probe = Handing(self._progress, probe=True)
            claimed, send = await self._claim(probe, limit=1)
            if send is None:  # nothing to try it with (yet): the next look may
                await self.pause.probe_later()
            else:
                task = asyncio.create_task(send)
                self._sending[task] = probe
                task.add_done_callback(self._sent)
            return self.poll_seconds
        if sum(1 for handing in self._sending.values() if handing.left) >= MAX_BATCHES:
            self._progress.clear()
            await self._progress.wait()
            return 0.0
        handing = Handing(self._progress)
        claimed, send = await self._claim(handing)
        if send is not None:
            task = asyncio.create_task(send)
            self._sending[task] = handing
            task.add_done_callback(self._sent)
        if claimed == self.batch_size:
            return 0.0  # more are waiting
        async with self.pool.acquire() as conn:  # sleep until the next one falls due
            wait = await conn.fetchval(Q.next_due_in)
        return self.poll_seconds if wait is None else min(self.poll_seconds, max(wait, 0.005))

    def _sent(self, task: asyncio.Task) -> None:
        del self._sending[task]
        self._progress.set()
        if not task.cancelled() and task.exception() is not None:
            # its unsent texts went back (or go back once their claims are found stale);
            # nothing was recorded twice
            log.warning("a batch of texts stopped: %s", type(task.exception()).__name__)

    async def _release_stale(self) -> None:
        async with self.pool.acquire() as conn:
            released = await conn.fetch(Q.release_stale_claims, self.stale_claim_seconds,
                                        self.callback_grace_seconds)
        if released:
            log.warning("released %d stale text claims", len(released))

    async def dispatch_once(self) -> int:
        """Claim one batch of due texts and send it. Returns how many were claimed."""
        claimed, send = await self._claim(Handing())
        if send is not None:
            await send
        return claimed

    async def _claim(self, handing: Handing, limit: int | None = None
                     ) -> tuple[int, Coroutine | None]:
        """Claim a batch of due texts (`limit`, default the batch size), rendered, and settle
        those that must not go out now, in one transaction; return how many were picked and
        the coroutine that sends the claimed ones (None if none)."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(Q.pick_due, CRITICAL_KINDS, limit or self.batch_size)
            if not rows:
                return 0, None
            columns, by_patient, notices = self._decide(rows, self.clock())
            claim = await conn.fetchval(Q.claim_picked, *columns, self.owner, notices)
        checked = asyncio.get_running_loop().time()
        for texts in by_patient.values():
            handing.left += len(texts)
            for text in texts:
                text.claim, text.checked = claim, checked
        if not by_patient:
            return len(rows), None
        return len(rows), self._send(by_patient, set(notices), handing)

    async def _send(self, by_patient: dict[UUID, list[Claimed]], noticed: set[UUID],
                    handing: Handing) -> None:
        results = Results(self.pool)
        gate = Coalesced(self._hand_over)
        # one patient's texts go out in order (the first carries the STOP notice);
        # different patients' texts go out concurrently
        try:
            await asyncio.gather(*(self._send_in_order(texts, patient in noticed, gate, results,
                                                       handing)
                                   for patient, texts in by_patient.items()))
        finally:
            await results.flush()

    def _decide(self, rows: list[asyncpg.Record], now: datetime
                ) -> tuple[list[list], dict[UUID, list[Claimed]], list[UUID]]:
        """What becomes of each picked text: the columns `claim_picked` takes, the claimed
        texts by patient, in due order, and the patients whose first text goes with the
        "reply STOP" notice."""
        ids, statuses, reasons, dues, bodies, n_segments = [], [], [], [], [], []
        by_patient: dict[UUID, list[Claimed]] = {}
        notices: list[UUID] = []
        told: set[UUID] = set()  # patients with a text of theirs in this batch
        policies: dict[tuple, Policy] = {}  # a batch holds the texts of few clinics
        for row in rows:  # already in due order
            key = (row["clinic_id"], row["quiet_start"], row["quiet_end"])
            policy = policies.get(key)
            if policy is None:
                policy = policies[key] = policy_from(row, self.quiet)
            text = Claimed(row, policy)
            verdict = text.not_now(now)
            body = n = None
            if verdict:
                status, reason, due = verdict
            else:
                status, reason, due = "sending", None, None
                patient = row["patient_id"]
                texts = by_patient.setdefault(patient, [])
                # the first text to a patient who never had one says how to stop (two
                # dispatchers claiming a new patient's texts at the same moment may both
                # say it: harmless); the ride contact's always does
                if text.to_driver:
                    first = True
                else:
                    first = patient not in told and not row["stop_notice_sent"]
                    told.add(patient)
                    if first:
                        notices.append(patient)
                body = text.body = render(row["kind"], text.context(), first_text=first)
                n = text.segments = segments(body)
                texts.append(text)
            ids.append(row["id"])
            statuses.append(status)
            reasons.append(reason)
            dues.append(due)
            bodies.append(body)
            n_segments.append(n)
        return [ids, statuses, reasons, dues, bodies, n_segments], by_patient, notices

    async def _send_in_order(self, texts: list[Claimed], notice: bool, gate: Coalesced,
                             results: Results, handing: Handing) -> None:
        """Send one patient's texts in order; `notice`: the first one carries "reply STOP".
        If this stops half-way (writes failing, the dispatcher stopping), the texts not yet
        handed to the sender go back at once."""
        loop = asyncio.get_running_loop()
        sent_now, problem = 0, None
        try:
            for text in texts:
                row = text.row
                reason = (f"number cannot be texted ({problem})"
                          if problem and not text.to_driver else text.over_cap(sent_now))
                if reason:
                    text.done = True
                    handing.one()
                    results.record(Outcomes().settle(text, "skipped", reason))
                    continue
                waited = await self.sender.turn(text.segments)
                handing.one()
                if self.pause.paused and not handing.probe:  # it waits for the fix
                    text.done = True
                    results.record(Outcomes().settle(text, "pending", self.pause.reason))
                    continue
                if waited or loop.time() - text.checked > RECHECK_AFTER:
                    # checked at the claim, but that was a while ago: check again
                    verdict = text.not_now(self.clock())  # quiet hours, too late by now?
                    if verdict is None and not await gate(text):
                        verdict = await self._why_dropped(text)
                        if verdict is None:
                            text.done = True
                            continue  # the claim is another dispatcher's now
                    if verdict:
                        text.done = True
                        results.record(Outcomes().settle(text, *verdict))
                        continue
                results.check()  # writes are failing: send nothing more for now
                text.done = True  # from here on, it may have reached the provider
                try:
                    sid = await self.sender.send(OutgoingSms(row["id"], text.to, text.body))
                except SendError as exc:
                    results.record(Outcomes().failed(text, exc))
                    if exc.kind is ErrorClass.SENDER:  # no number is at fault: all wait
                        await self.pause.hold(exc.code, exc.meaning)
                    elif exc.kind is ErrorClass.NUMBER:
                        problem = problem or str(exc)
                    continue
                if self.pause.paused:  # a text got through: the problem is gone
                    await self.pause.resume()
                if not text.to_driver:
                    notice = False
                sent_now += 1
                results.sent(text, sid)
        except BaseException:
            back = Outcomes()
            for t in texts:
                if not t.done:
                    back.settle(t, "pending", "its dispatcher stopped before sending it")
            if back.settled:
                results.record(back)
            raise
        finally:
            if notice:  # the "reply STOP" text did not go out: the next one carries it
                results.record(Outcomes(releases=[texts[0].row["patient_id"]]))

    async def _hand_over(self, texts: list[Claimed]) -> list[bool]:
        """Step (2) again for texts whose turn came late: which may still go."""
        async with self.pool.acquire() as conn:
            handed = {r["id"] for r in await conn.fetch(
                Q.hand_over, [t.row["id"] for t in texts], [t.claim for t in texts])}
        return [text.row["id"] in handed for text in texts]

    async def _why_dropped(self, text: Claimed) -> tuple[str, str, datetime | None] | None:
        """Why a text that may not go any more must not (read again), or None if its claim
        is no longer this dispatcher's."""
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(Q.texts_in_context, CRITICAL_KINDS, [text.row["id"]])
        if row is None:
            return None
        return Claimed(row, text.policy, text.claim).not_now(self.clock())


class Handing:
    """How many texts of a batch are still to be handed to the sender (pacing may hold
    them); `progress` is set when none are left."""

    def __init__(self, progress: asyncio.Event | None = None, probe: bool = False):
        self.left = 0
        self.progress = progress
        self.probe = probe
        """The one text a paused dispatcher sends to see whether the problem is gone."""

    def one(self) -> None:
        self.left -= 1
        if not self.left and self.progress is not None:
            self.progress.set()


@dataclass(slots=True)
class Claimed:
    """A claimed text with its context row and its clinic's policy."""

    row: asyncpg.Record
    policy: Policy
    claim: datetime | None = None
    """The token of the dispatcher's claim (the time it was claimed)."""
    checked: float = 0.0
    """When (event loop time) the claim checked that the text stands."""
    body: str = ""
    segments: int = 1
    to_driver: bool = False
    """Whether the text goes to the ride contact (the pickup text), not the patient."""
    done: bool = False
    """Settled, or handed to the sender (it may have reached the provider)."""

    def __post_init__(self):
        self.to_driver = self.row["kind"] == "pickup"

    @property
    def to(self) -> str:
        """The number the text goes to."""
        return self.row["ride_contact_phone"] if self.to_driver else self.row["phone_e164"]

    def not_now(self, now: datetime) -> tuple[str, str, datetime | None] | None:
        """Why a claimed text must not go out now, as (status, reason, new due time), or
        None if it may."""
        row = self.row
        reason = _why_not(row, now)
        if reason:
            return ("cancelled" if reason.startswith("appointment") else "skipped"), reason, None
        if row["site_timezone"] is not None:  # quiet hours, and the day its words name
            tz = ZoneInfo(row["site_timezone"])
            due = move(row["kind"], now, tz, self.policy.quiet, not_before=now,
                       starts_at=row["starts_at"], planned=row["due_at"])
            if due is None:
                return "skipped", "quiet hours until the day it names is over", None
            if due > now:
                if due > row["valid_until"]:
                    return "skipped", "quiet hours until it is too late to be useful", None
                if self.policy.quiet.allowed(now.astimezone(tz)):
                    return "pending", "held until the day it names", due
                return "pending", "held until quiet hours end", due
        return None

    def over_cap(self, sent_now: int) -> str | None:
        """The clinic's daily/weekly caps (appointment-critical texts may pass them);
        `sent_now`: texts sent to the patient in this batch so far."""
        row = self.row
        if self.to_driver or row["site_timezone"] is None:
            return None
        if row["kind"] in CRITICAL and self.policy.critical_past_caps:
            return None
        today, week = row["sent_today"] + sent_now, row["sent_week"] + sent_now
        if self.policy.capped(row["kind"], today, week):
            return f"cap reached ({today} today, {week} in 7 days)"
        return None

    def context(self) -> TextContext:
        row = self.row
        return TextContext(
            language=row["language"], clinic_name=row["clinic_name"],
            phone=row["text_phone"], site_name=row["site_name"],
            site_address=row["site_address"], timezone=row["site_timezone"],
            starts_at=row["starts_at"], fasting_rule=row["fasting_rule"], ends_at=row["ends_at"])

    def envelope(self, payload) -> Envelope:
        return Envelope.new(payload, producer=PRODUCER, clinic_id=self.row["clinic_id"],
                            patient_id=self.row["patient_id"])


def _why_not(row: asyncpg.Record, now: datetime) -> str | None:
    """Why a claimed text must not go out at all, or None if it may."""
    if row["number_opted_out"]:  # the number it goes to (patient's or ride contact's) said STOP
        return "number opted out"
    if row["kind"] == "pickup":  # to the ride contact, who agreed to texts
        if not row["ride_contact_phone"]:
            return "no ride contact who agreed to texts"
    elif row["phone_e164"] is None:
        return "no contact details for the patient"
    elif not row["sms_consent"]:
        return "patient has not consented to texts"
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
    if now > row["valid_until"]:
        return "too late to be useful"
    return None
