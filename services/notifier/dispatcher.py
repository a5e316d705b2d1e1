"""The dispatcher: claims due texts with SKIP LOCKED, renders them from the current
appointment, checks that each one still stands when it goes (so a text never quotes a stale
time), sends, and records the result together with its `SmsSent` event. Safe with several
instances.

Exactly once, and its one gap. A text is (1) claimed, in one transaction: picked with `FOR
UPDATE SKIP LOCKED` together with everything it depends on (contact, appointment or slot
offer, policy, opt-outs), checked (`rules.not_now`: consent, number opted out or refused,
appointment neither cancelled, moved nor over, not in quiet hours, not too late), rendered,
and stored as `status = 'sending'` with its body, marked as handed over (it may reach the
provider within milliseconds) and with the claim's time as its token; (2) when its turn
comes, if the sender's pacing made it wait (or the turn came more than `RECHECK_AFTER`
seconds after the claim), checked again: quiet hours and validity, then in one statement
with the other texts whose turn came meanwhile (claim still this dispatcher's, appointment
not moved or over, consent standing, number not opted out or refused, slot still open),
which refreshes its handed-over time; then handed to the provider, with a status callback
URL naming the text; (3) its SID recorded with `status = 'sent'` and its `SmsSent` event, in
one statement, only if the claim is still this dispatcher's. Claims carry the dispatcher's
lease (a row of `dispatcher_leases` it renews every third of `lease_seconds`; not a backend
pid, which means nothing behind PgBouncer in transaction mode): when the dispatcher dies its
lease lapses, and once `callback_grace_seconds` have passed since a claim was handed over
the other instances (or its successor) release its claims that have no SID, and they are
sent, once. A crash between Twilio accepting a request and the commit of (3), a window of
one HTTP response and one local statement, is closed by Twilio's first status callback: it
names the text, so the text is recorded as sent with its SID (`receipts`) and never sent
again, if it comes within the grace time. What remains is the narrow window's narrow case: a
crash there with no callback reaching the notifier before the claim is released (no status
callback URL configured, or every callback lost for the grace time): Twilio's Messages API
has no idempotency key, so the text is sent again. A claim not handed over for
`stale_claim_seconds` is released whatever (a stuck dispatcher; its claim token then keeps
it from sending). Kafka redelivery never sends a duplicate (texts are scheduled once per
event, in the consumer's transaction), a slow dispatcher never races another one for the
same text (the claim tokens), and no other crash does.

A batch is set-based: one query picks it with its context, one statement claims it (and
settles the texts that must not go out now: cancelled, skipped, or held until quiet hours
end or the day their words name; and hands out the "reply STOP" notices). Then each
patient's texts are sent in order, different patients' concurrently (the sender paces
them); the clinic's caps are counted as they go (`rules.over_cap`), and each result is
recorded (3) as soon as the provider answers. The checks of (2) and the records of (3) are
grouped: each waits at most for the statement under way, then goes with all that arrived
meanwhile, so (3) is never more than about two local statements behind the provider's
answer. While an account or sender problem pauses sending (`pause`), texts stay pending and
one text now and then is tried to see whether it is fixed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

import asyncpg
from opentelemetry.trace import SpanKind, StatusCode

from services.notifier import store
from services.notifier.claimed import Claimed
from services.notifier.outcomes import Coalesced, Outcomes, Results
from services.notifier.pause import Pause
from services.notifier.policy import CRITICAL, Policy, policy_from
from services.notifier.receipts import apply_early_receipts
from services.notifier.rules import Verdict, not_now, over_cap, text_context
from services.notifier.schedule import QuietHours
from services.notifier.senders import OutgoingSms, SendError, SmsSender
from services.notifier.store import DueText, Q
from services.notifier.templates import LOCALES, TextContext, render, segments, template_kind
from services.notifier.twilio_errors import ErrorClass
from shared import tracing
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
                 probe_seconds: float = 60.0, unreachable_marks_after: int = 3,
                 lease_seconds: float = 15.0, listen_pool: asyncpg.Pool | None = None):
        """`quiet`: the quiet hours of clinics that set none (the service's setting);
        `clock`: the time texts are checked at (tests give literal times); `probe_seconds`:
        how often a paused sender is tried with one text; `unreachable_marks_after`: see
        `receipts`; `lease_seconds`: how long the claims of a dispatcher that stopped
        renewing its lease stay its own; `listen_pool`: direct sessions, for LISTEN
        (default `pool`, which may go through PgBouncer in transaction mode)."""
        self.pool = pool
        self.listen_pool = listen_pool or pool
        self.channel = f"{schema}_texts"
        self.sender = sender
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.stale_claim_seconds = stale_claim_seconds
        self.callback_grace_seconds = callback_grace_seconds
        self.lease_seconds = lease_seconds
        self.owner: int | None = None
        """This dispatcher's lease (while `run` runs): it marks its claims."""
        self.quiet = quiet
        self.clock = clock
        self.pause = Pause(pool, sender.pause_key, probe_seconds)
        self.unreachable_marks_after = unreachable_marks_after
        self._last_release = self._last_receipts = float("-inf")
        self._sending: dict[asyncio.Task[None], Handing] = {}
        self._progress = asyncio.Event()  # a batch handed over its last text, or ended

    async def run(self) -> None:
        """Dispatch until cancelled; wakes when texts are scheduled, when the next one falls
        due, or after a short poll. Up to `MAX_BATCHES` batches are handed over at once."""
        try:
            await self.pause.forget()  # a restart with the right settings fixes a pause
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("could not clear the sender's pause at start: %s", type(exc).__name__)
        await self._renew_lease()  # claims wait for a lease: take it before the first look
        lease = asyncio.create_task(self._keep_lease())
        try:
            await listen_loop(self.listen_pool, self.channel, self._step, "dispatcher")
        finally:
            lease.cancel()
            for task in self._sending:
                task.cancel()
            await asyncio.gather(lease, *self._sending, return_exceptions=True)
            await self._drop_lease()

    async def _keep_lease(self) -> None:
        """Hold a lease while running: renew it every third of its time (without one, try
        again within a second)."""
        while True:
            every = self.lease_seconds / 3
            await asyncio.sleep(every if self.owner is not None else min(every, 1.0))
            await self._renew_lease()

    async def _renew_lease(self) -> None:
        """Renew the lease, or take a new one if there is none or it lapsed (the old one's
        claims go back; their tokens keep them from going twice)."""
        try:
            async with self.pool.acquire() as conn:
                if self.owner is None or not await store.renew_lease(conn, self.owner,
                                                                     self.lease_seconds):
                    if self.owner is not None:
                        log.warning("the dispatcher's lease lapsed: its open claims go back")
                    self.owner = await store.take_lease(conn, self.lease_seconds)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("could not renew the dispatcher's lease: %s", type(exc).__name__)

    async def _drop_lease(self) -> None:
        """End the lease when stopping: the claims with no SID go back after their grace."""
        lease, self.owner = self.owner, None
        if lease is None:
            return
        try:
            async with asyncio.timeout(2.0), self.pool.acquire() as conn:
                await store.drop_lease(conn, lease)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            pass  # it lapses by itself

    async def _step(self) -> float:
        """One look: claim and start sending a batch (or one probe while paused); returns
        how long to sleep before the next look, unless texts are scheduled meanwhile."""
        if self.owner is None:  # no claims without a lease: it comes within moments
            return min(self.poll_seconds, 0.1)
        await self._upkeep()
        if self.pause.paused:  # an account or sender problem: one text now and then
            await self._probe()
            return self.poll_seconds
        if sum(1 for handing in self._sending.values() if handing.left) >= MAX_BATCHES:
            self._progress.clear()
            await self._progress.wait()
            return 0.0
        handing = Handing(self._progress)
        claimed, send = await self._claim(handing)
        self._start(send, handing)
        if claimed == self.batch_size:
            return 0.0  # more are waiting
        async with self.pool.acquire() as conn:  # sleep until the next one falls due
            wait = await conn.fetchval(Q.next_due_in)
        return self.poll_seconds if wait is None else min(self.poll_seconds, max(wait, 0.005))

    async def _upkeep(self) -> None:
        """Now and then: release the claims of dispatchers that died, apply the receipts
        that came before their SID was stored; and read the sender's pause again."""
        now = asyncio.get_running_loop().time()
        if now - self._last_release > RELEASE_EVERY:
            await self._release_stale()
            self._last_release = now
        if now - self._last_receipts > RECEIPTS_EVERY:
            await apply_early_receipts(self.pool, pause_key=self.sender.pause_key,
                                       unreachable_marks_after=self.unreachable_marks_after)
            self._last_receipts = now
        await self.pause.refresh()

    async def _probe(self) -> None:
        """While paused: send one text, if it is this instance's turn to try."""
        if not await self.pause.probe_now():
            return
        probe = Handing(self._progress, probe=True)
        _, send = await self._claim(probe, limit=1)
        if send is None:  # nothing to try it with (yet): the next look may
            await self.pause.probe_later()
        self._start(send, probe)

    def _start(self, send: Coroutine[Any, Any, None] | None, handing: Handing) -> None:
        """Send a claimed batch in a task of its own (kept until it ends)."""
        if send is not None:
            task = asyncio.create_task(send)
            self._sending[task] = handing
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        del self._sending[task]
        self._progress.set()
        if not task.cancelled() and task.exception() is not None:
            # its unsent texts went back (or go back once their claims are found stale);
            # nothing was recorded twice
            log.warning("a batch of texts stopped: %s", type(task.exception()).__name__)

    async def _release_stale(self) -> None:
        async with self.pool.acquire() as conn:
            released = await store.release_stale_claims(conn, self.stale_claim_seconds,
                                                        self.callback_grace_seconds)
        if released:
            log.warning("released %d stale text claims", released)

    async def dispatch_once(self) -> int:
        """Claim one batch of due texts and send it. Returns how many were claimed."""
        claimed, send = await self._claim(Handing())
        if send is not None:
            await send
        return claimed

    async def _claim(self, handing: Handing, limit: int | None = None
                     ) -> tuple[int, Coroutine[Any, Any, None] | None]:
        """Claim a batch of due texts (`limit`, default the batch size), rendered, and settle
        those that must not go out now, in one transaction; return how many were picked and
        the coroutine that sends the claimed ones (None if none)."""
        async with self.pool.acquire() as conn, conn.transaction():
            picked = await store.pick_due(conn, CRITICAL_KINDS, limit or self.batch_size)
            if not picked:
                return 0, None
            overrides = await store.latest_overrides(conn, {t.clinic_id for t in picked})
            claimed, settled, by_patient, notices = self._decide(picked, self.clock(), overrides)
            claim = await conn.fetchval(Q.claim_picked, *claimed, self.owner, notices, *settled)
        checked = asyncio.get_running_loop().time()
        for texts in by_patient.values():
            handing.left += len(texts)
            for text in texts:
                text.claim, text.checked = claim, checked
        if not by_patient:
            return len(picked), None
        return len(picked), self._send(by_patient, set(notices), handing)

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

    def _decide(self, picked: list[DueText], now: datetime, overrides: store.Overrides
                ) -> tuple[list[list[Any]], list[list[Any]], dict[UUID, list[Claimed]],
                           list[UUID]]:
        """What becomes of each picked text: the columns `claim_picked` takes of those
        claimed (id, body, segments, template version) and of those settled (id, status,
        reason, new due time), the claimed texts by patient, in due order, and the patients
        whose first text goes with the "reply STOP" notice. `overrides`: the networks' own
        words."""
        claimed: list[list[Any]] = [[], [], [], []]
        ids, bodies, n_segments, versions = claimed
        settled: list[list[Any]] = [[], [], [], []]
        by_patient: dict[UUID, list[Claimed]] = {}
        notices: list[UUID] = []
        told: set[UUID] = set()  # patients with a text of theirs in this batch
        policies: dict[tuple[Any, ...], Policy] = {}  # a batch holds the texts of few clinics
        for due in picked:  # already in due order
            key = (due.clinic_id, due.quiet_start, due.quiet_end)
            policy = policies.get(key)
            if policy is None:
                policy = policies[key] = policy_from(due, self.quiet)
            verdict = not_now(due, policy, now)
            if verdict:
                for column, value in zip(settled, (due.id, *verdict), strict=True):
                    column.append(value)
                continue
            text = _rendered(Claimed(due, policy), told, notices, overrides)
            by_patient.setdefault(due.patient_id, []).append(text)
            ids.append(due.id)
            bodies.append(text.body)
            n_segments.append(text.segments)
            versions.append(text.template_version)
        return claimed, settled, by_patient, notices

    async def _send_in_order(self, texts: list[Claimed], notice: bool, gate: Coalesced,
                             results: Results, handing: Handing) -> None:
        """Send one patient's texts in order; `notice`: the first one carries "reply STOP".
        If this stops half-way (writes failing, the dispatcher stopping), the texts not yet
        handed to the sender go back at once."""
        run = _Run(notice)
        try:
            for text in texts:
                await self._send_one(text, run, gate, results, handing)
        except BaseException:
            back = Outcomes()
            for t in texts:
                if not t.done:
                    back.settle(t, "pending", "its dispatcher stopped before sending it")
            if back.settled:
                results.record(back)
            raise
        finally:
            if run.notice:  # the "reply STOP" text did not go out: the next one carries it
                results.record(Outcomes(releases=[texts[0].due.patient_id]))

    async def _send_one(self, text: Claimed, run: _Run, gate: Coalesced, results: Results,
                        handing: Handing) -> None:
        """Send one text of a patient's, in its turn, if it still may go (else settle it)."""
        reason = (f"number cannot be texted ({run.problem})" if run.problem and not text.to_driver
                  else over_cap(text.due, text.policy, run.sent))
        if reason:
            text.done = True
            handing.one()
            results.record(Outcomes().settle(text, "skipped", reason))
            return
        waited = await self.sender.turn(text.segments)
        handing.one()
        if self.pause.paused and not handing.probe:  # it waits for the fix
            text.done = True
            results.record(Outcomes().settle(text, "pending", self.pause.reason))
            return
        if (waited or asyncio.get_running_loop().time() - text.checked > RECHECK_AFTER) \
                and not await self._still_stands(text, gate, results):
            return
        results.check()  # writes are failing: send nothing more for now
        text.done = True  # from here on, it may have reached the provider
        try:
            sid = await _send_traced(self.sender, text) if tracing.enabled() else \
                await self.sender.send(OutgoingSms(text.due.id, text.to, text.body))
        except SendError as exc:
            results.record(Outcomes().failed(text, exc))
            if exc.kind is ErrorClass.SENDER:  # no number is at fault: all wait
                await self.pause.hold(exc.code, exc.meaning)
            elif exc.kind is ErrorClass.NUMBER:
                run.problem = run.problem or str(exc)
            return
        if self.pause.paused:  # a text got through: the problem is gone
            await self.pause.resume()
        if not text.to_driver:
            run.notice = False
        run.sent += 1
        results.sent(text, sid)

    async def _still_stands(self, text: Claimed, gate: Coalesced, results: Results) -> bool:
        """Step (2): check again a text its claim checked a while ago (quiet hours, too late
        by now; then its claim and what it depends on, grouped with others); settle it if it
        must not go. Returns whether it may go."""
        verdict = not_now(text.due, text.policy, self.clock())
        if verdict is None and not await gate(text):
            verdict = await self._why_dropped(text)
            if verdict is None:
                text.done = True
                return False  # the claim is another dispatcher's now
        if verdict:
            text.done = True
            results.record(Outcomes().settle(text, *verdict))
            return False
        return True

    async def _hand_over(self, texts: list[Claimed]) -> list[bool]:
        """Step (2)'s statement for texts whose turn came late: which may still go."""
        async with self.pool.acquire() as conn:
            handed = await store.hand_over(conn, [t.due.id for t in texts],
                                           [t.claim for t in texts])
        return [text.due.id in handed for text in texts]

    async def _why_dropped(self, text: Claimed) -> Verdict | None:
        """Why a text that may not go any more must not (read again), or None if its claim
        is no longer this dispatcher's."""
        async with self.pool.acquire() as conn:
            again = await store.texts_in_context(conn, CRITICAL_KINDS, [text.due.id])
        if not again:
            return None
        return not_now(again[0], text.policy, self.clock())


def _rendered(text: Claimed, told: set[UUID], notices: list[UUID],
              overrides: store.Overrides) -> Claimed:
    """`text` with its body, in its network's own words if it has them (`overrides`), and
    the version of them: the first text to a patient who never had one says how to stop
    (two dispatchers claiming a new patient's texts at the same moment may both say it:
    harmless), and so does the ride contact's, always. `told`: patients with a text in the
    batch so far; `notices`: those whose first text says it (both updated)."""
    if text.to_driver:
        first = True
    else:
        patient = text.due.patient_id
        first = patient not in told and not text.due.stop_notice_sent
        told.add(patient)
        if first:
            notices.append(patient)
    ctx = text_context(text.due)
    lang = ctx.language if ctx.language in LOCALES else "en"
    version, words = overrides.get(
        (text.due.clinic_id, template_kind(text.due.kind, ctx.mode), lang), (0, None))
    text.body, text.segments = _body(text.due.kind, ctx, first, words)
    text.template_version = version
    return text


@lru_cache(maxsize=4096)
def _body(kind: str, ctx: TextContext, first_text: bool, words: str | None) -> tuple[str, int]:
    """The text of `kind` for `ctx` (`templates.render`; `words`: its network's own) and
    its segments. A text names no patient, and many texts of a burst say the same (the
    patients of one slot at one site, in one language): each is rendered once."""
    body = render(kind, ctx, first_text=first_text, template=words)
    return body, segments(body)


@dataclass(slots=True)
class _Run:
    """One patient's texts as they go out in order."""

    notice: bool
    """The "reply STOP" notice is still to go (with the first text that gets through)."""
    sent: int = 0
    """Texts sent so far (the caps count them)."""
    problem: str | None = None
    """Twilio refused the patient's number: their next texts are skipped."""


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


async def _send_traced(sender: SmsSender, text: Claimed) -> str:
    """`sender.send` in a span of the text's trace (the event that scheduled it): the text's
    id and kind, then the provider's SID or error code; never its number or body."""
    with tracing.tracer().start_as_current_span(
            "notifier send text", context=tracing.parent(text.due.trace_context),
            kind=SpanKind.CLIENT, record_exception=False, set_status_on_exception=False,
            attributes={"kcb.text_id": text.due.id, "kcb.text_kind": text.due.kind}) as span:
        try:
            sid = await sender.send(OutgoingSms(text.due.id, text.to, text.body))
        except SendError as exc:
            span.set_attributes({"kcb.send_error": exc.code, "kcb.error_class": exc.kind.value})
            span.set_status(StatusCode.ERROR, exc.code)
            raise
        except BaseException as exc:
            span.set_status(StatusCode.ERROR, type(exc).__name__)
            raise
        span.set_attribute("kcb.provider_sid", sid)
        return sid
