"""The dispatcher checks that each text still stands, and that its claim is still its own,
just before it goes: a reschedule while a text waits for its turn cancels the text instead of sending the
old time; a slow dispatcher whose claim was released never sends a text another one sent; a
delivery receipt that comes before its SID is stored is kept and applied (real PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from services.notifier import handlers, store
from services.notifier.dispatcher import CRITICAL_KINDS, MAX_BATCHES, Dispatcher
from services.notifier.receipts import apply_receipt
from services.notifier.schedule import QuietHours
from services.notifier.senders import OutgoingSms, SmsSender
from services.notifier.store import Q
from shared.events import Envelope
from shared.events.booking import PatientRegistered
from tests.conftest import eventually
from tests.helpers import session_booked
from tests.test_notifier_batches import moved, notifier_schema

ANY_HOUR = QuietHours(start=24, end=0)


class InstantSender(SmsSender):
    """Takes every text at once; remembers what it took."""

    def __init__(self, prefix: str = "SM"):
        self.prefix = prefix
        self.sent: list[OutgoingSms] = []

    async def send(self, sms: OutgoingSms) -> str:
        self.sent.append(sms)
        return f"{self.prefix}{sms.text_id:032d}"


class HeldSender(InstantSender):
    """Holds every text at its turn (as pacing would) until `go` is set."""

    def __init__(self, prefix: str = "SH"):
        super().__init__(prefix)
        self.waiting, self.go = asyncio.Event(), asyncio.Event()

    async def turn(self, segments: int) -> bool:
        self.waiting.set()
        await self.go.wait()
        return True


@pytest.fixture
async def pool(infra, namespace):
    pool = await notifier_schema(infra.database_url, f"{namespace}_notifier")
    try:
        yield pool
    finally:
        await pool.close()


async def book(pool) -> Envelope:
    """A patient who agreed to texts and their session in 5 days: its confirmation is due."""
    patient, clinic = uuid4(), uuid4()
    registered = Envelope.new(PatientRegistered(phone_e164="+16045550199", sms_consent=True),
                              producer="booking", clinic_id=clinic, patient_id=patient)
    booked = session_booked(patient_id=patient, clinic_id=clinic, starts_in=timedelta(days=5))
    async with pool.acquire() as conn, conn.transaction():
        await handlers.on_patient_registered(conn, registered)
        await handlers.on_session_booked(conn, booked, quiet=ANY_HOUR)
    return booked


async def confirmations(pool) -> list[dict]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT id, booking_version, status, status_reason, provider_sid"
                                " FROM texts WHERE kind = 'confirmation' ORDER BY id")
    return [dict(r) for r in rows]


async def sms_sent_events(pool) -> int:
    async with pool.acquire() as conn:
        return await conn.fetchval("SELECT count(*) FROM outbox WHERE event_type = 'SmsSent'")


async def test_a_text_waiting_for_its_turn_when_the_session_moves_is_cancelled_not_sent(pool):
    booked = await book(pool)
    held = HeldSender()
    first = asyncio.create_task(Dispatcher(pool, held, quiet=ANY_HOUR).dispatch_once())
    await asyncio.wait_for(held.waiting.wait(), 10)  # claimed, rendered with the old time

    async with pool.acquire() as conn, conn.transaction():
        await handlers.on_session_rescheduled(conn, moved(booked, days=1), quiet=ANY_HOUR)
    held.go.set()
    assert await first == 1
    assert held.sent == [], "the old time never reaches the provider"

    instant = InstantSender()
    assert await Dispatcher(pool, instant, quiet=ANY_HOUR).dispatch_once() == 1
    old, new = await confirmations(pool)
    assert (old["status"], old["status_reason"]) == ("cancelled", "appointment was moved")
    assert (new["booking_version"], new["status"]) == (2, "sent")
    assert [sms.text_id for sms in instant.sent] == [new["id"]]
    assert await sms_sent_events(pool) == 1


async def test_the_first_text_to_the_patient_says_how_to_stop_even_after_the_drivers(pool):
    patient, clinic = uuid4(), uuid4()
    registered = Envelope.new(PatientRegistered(phone_e164="+16045550199", sms_consent=True),
                              producer="booking", clinic_id=clinic, patient_id=patient)
    # the pickup text names the session's day, so the session is on the site's local today:
    # a zone where it is now about noon (Etc/GMT-2 is UTC+2), three hours later
    offset = 12 - datetime.now(UTC).hour
    zone = "Etc/UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"
    booked = session_booked(patient_id=patient, clinic_id=clinic, starts_in=timedelta(hours=3),
                            site_timezone=zone,
                            ride_contact={"name": "Sam", "phone_e164": "+16045550123"})
    async with pool.acquire() as conn, conn.transaction():
        await handlers.on_patient_registered(conn, registered)
        await handlers.on_session_booked(conn, booked, quiet=ANY_HOUR)
        # the driver's text first, then the patient's, in one batch
        await conn.execute("UPDATE texts SET status = 'cancelled' WHERE kind <> 'confirmation'")
        await conn.execute(
            "INSERT INTO texts (clinic_id, patient_id, booking_id, booking_version, kind, due_at,"
            " valid_until) VALUES ($1, $2, $3, 1, 'pickup', now() - interval '1 minute',"
            " now() + interval '1 hour')", clinic, patient, booked.payload.booking_id)

    sender = InstantSender()
    assert await Dispatcher(pool, sender, quiet=ANY_HOUR).dispatch_once() == 2
    bodies = {sms.to: sms.body for sms in sender.sent}
    assert bodies["+16045550123"].endswith("Reply STOP to opt out."), "the driver's"
    assert bodies["+16045550199"].endswith("Reply STOP to opt out."), "the patient's first"


async def test_a_slow_dispatcher_whose_claim_was_released_does_not_send_the_text_again(pool):
    await book(pool)
    held = HeldSender()
    slow = asyncio.create_task(Dispatcher(pool, held, quiet=ANY_HOUR).dispatch_once())
    await asyncio.wait_for(held.waiting.wait(), 10)
    async with pool.acquire() as conn:  # the slow one looks dead: its claim is released
        assert len(await conn.fetch(Q.release_stale_claims, 0.0, 0.0)) == 1

    other = InstantSender()
    assert await Dispatcher(pool, other, quiet=ANY_HOUR).dispatch_once() == 1
    held.go.set()
    await slow

    [text] = await confirmations(pool)
    assert held.sent == [] and len(other.sent) == 1, "sent once, by the other dispatcher"
    assert (text["status"], text["provider_sid"]) == ("sent", f"SM{text['id']:032d}")
    assert await sms_sent_events(pool) == 1


class FlakyPool:
    """A pool whose connections cannot be had while `down` (PostgreSQL restarting)."""

    def __init__(self, pool):
        self.pool, self.down, self.refused = pool, False, 0

    def acquire(self):
        if self.down:
            self.refused += 1
            raise ConnectionRefusedError("PostgreSQL is restarting")
        return self.pool.acquire()


async def test_a_sent_text_is_recorded_once_postgresql_is_back_not_sent_again(pool):
    await book(pool)
    flaky = FlakyPool(pool)

    class GoingDown(InstantSender):
        async def send(self, sms: OutgoingSms) -> str:
            flaky.down = True  # PostgreSQL goes away just as Twilio takes the text
            asyncio.get_running_loop().call_later(0.5, setattr, flaky, "down", False)
            return await super().send(sms)

    sender = GoingDown()
    assert await Dispatcher(flaky, sender, quiet=ANY_HOUR).dispatch_once() == 1
    [text] = await confirmations(pool)
    assert flaky.refused >= 1, "the first write failed"
    assert (text["status"], text["provider_sid"]) == ("sent", f"SM{text['id']:032d}")
    assert await sms_sent_events(pool) == 1
    assert await Dispatcher(pool, InstantSender(), quiet=ANY_HOUR).dispatch_once() == 0


async def test_while_postgresql_is_away_the_texts_not_yet_sent_go_back_at_once(pool):
    booked = await book(pool)
    async with pool.acquire() as conn:  # a second text for the same patient, due now
        await conn.execute(
            "INSERT INTO texts (clinic_id, patient_id, booking_id, booking_version, kind, due_at,"
            " valid_until) VALUES ($1, $2, $3, 1, 'prep', now(), now() + interval '1 hour')",
            booked.clinic_id, booked.patient_id, booked.payload.booking_id)
    flaky = FlakyPool(pool)

    class GoingDown(InstantSender):
        async def turn(self, segments: int) -> bool:
            await asyncio.sleep(0)  # other work goes on meanwhile (as a paced sender's does)
            return False

        async def send(self, sms: OutgoingSms) -> str:
            if not self.sent:
                flaky.down = True
                asyncio.get_running_loop().call_later(0.5, setattr, flaky, "down", False)
            return await super().send(sms)

    first = GoingDown()
    with pytest.raises(ConnectionRefusedError):  # the batch stopped (and said why)
        await Dispatcher(flaky, first, quiet=ANY_HOUR).dispatch_once()
    assert len(first.sent) == 1, "nothing more is sent while results cannot be recorded"
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT id, status, status_reason FROM texts"
                                " WHERE due_at <= now() ORDER BY due_at, id")
    assert [r["status"] for r in rows] == ["sent", "pending"]
    assert rows[1]["status_reason"] == "its dispatcher stopped before sending it"

    second = InstantSender()
    assert await Dispatcher(pool, second, quiet=ANY_HOUR).dispatch_once() == 1
    assert [s.text_id for s in first.sent + second.sent] == [r["id"] for r in rows]


async def test_a_delivery_receipt_that_comes_before_its_sid_is_stored_is_applied_later(pool):
    await book(pool)
    [text] = await confirmations(pool)
    sid = f"SM{text['id']:032d}"  # what the sender below will be given
    async with pool.acquire() as conn, conn.transaction():
        assert await apply_receipt(conn, sid, "delivered", None) is False  # kept, not lost

    dispatcher = asyncio.create_task(Dispatcher(pool, InstantSender(), quiet=ANY_HOUR,
                                                poll_seconds=0.1).run())
    try:
        async def delivered():
            async with pool.acquire() as conn:
                return await conn.fetchval("SELECT delivery_status FROM texts WHERE id = $1",
                                           text["id"]) == "delivered"
        await eventually(delivered)
    finally:
        dispatcher.cancel()
        await asyncio.gather(dispatcher, return_exceptions=True)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM early_receipts") == 0
        assert await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE event_type = 'SmsDelivered'") == 1


async def claim_one(pool, owner: int) -> int:
    """Claim one due text as the dispatcher holding lease `owner` would."""
    async with pool.acquire() as conn, conn.transaction():
        [row] = await conn.fetch(Q.pick_due, CRITICAL_KINDS, 1)
        await conn.fetchval(Q.claim_picked, [row["id"]], ["Hi"], [1], [0], owner, [],
                            [], [], [], [])
    return row["id"]


async def test_the_claims_of_a_dispatcher_whose_lease_lapsed_go_back_once_no_receipt_can_come(
        pool):
    await book(pool)
    await book(pool)
    alive = await store.take_lease(pool, 300.0)
    dead = await store.take_lease(pool, 0.2)  # as a kill -9 stops the renewals
    mine = await claim_one(pool, alive)
    theirs = await claim_one(pool, dead)

    async def released(grace: float):
        async with pool.acquire() as conn:
            return [r["id"] for r in await conn.fetch(Q.release_stale_claims, 300.0, grace)]
    # Twilio may have taken the text just before the kill: its receipt may still come
    await asyncio.sleep(0.3)
    assert await released(grace=300.0) == []
    assert await released(grace=0.0) == [theirs]
    async with pool.acquire() as conn:
        status = await conn.fetchval("SELECT status FROM texts WHERE id = $1", mine)
        leases = [r["id"] for r in await conn.fetch("SELECT id FROM dispatcher_leases")]
    assert status == "sending", "a live dispatcher's claim stays its own"
    assert leases == [alive], "the lapsed lease's row is gone"


async def test_a_lapsed_lease_is_not_renewed_and_a_live_one_is(pool):
    live = await store.take_lease(pool, 300.0)
    lapsing = await store.take_lease(pool, 0.05)
    await asyncio.sleep(0.1)
    assert await store.renew_lease(pool, live, 300.0) is True
    assert await store.renew_lease(pool, lapsing, 300.0) is False


async def test_a_running_dispatcher_holds_a_lease_and_drops_it_when_it_stops(pool):
    dispatcher = Dispatcher(pool, InstantSender(), quiet=ANY_HOUR, poll_seconds=0.05,
                            lease_seconds=0.3)
    task = asyncio.create_task(dispatcher.run())
    try:
        first = await eventually(lambda: asyncio.sleep(0, dispatcher.owner))
        await asyncio.sleep(0.5)  # longer than the lease: renewed meanwhile
        assert dispatcher.owner == first
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT id FROM dispatcher_leases") == first
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM dispatcher_leases") == 0


class StallingSender(InstantSender):
    """Stalls on the first `stalls` texts it is given (Twilio requests hanging until their
    timeout)."""

    def __init__(self, stalls: int = 1):
        super().__init__()
        self.stalls = stalls
        self.stalled, self.release = asyncio.Event(), asyncio.Event()

    async def send(self, sms: OutgoingSms) -> str:
        if self.stalls:
            self.stalls -= 1
            if not self.stalls:
                self.stalled.set()
            await self.release.wait()
        return await super().send(sms)


@pytest.mark.parametrize("hanging", [1, MAX_BATCHES + 1])
async def test_hanging_provider_calls_do_not_hold_up_texts_claimed_after_them(pool, hanging):
    sender = StallingSender(stalls=hanging)
    dispatcher = asyncio.create_task(Dispatcher(pool, sender, quiet=ANY_HOUR,
                                                poll_seconds=0.1).run())

    async def statuses():
        return sorted(t["status"] for t in await confirmations(pool))
    try:
        for i in range(hanging):  # one confirmation after another: a batch each, each hangs
            await book(pool)
            await eventually(lambda: _equal(statuses(), ["sending"] * (i + 1)))
        await asyncio.wait_for(sender.stalled.wait(), 10)
        await book(pool)  # another patient's confirmation, due while those calls hang

        assert await eventually(lambda: _equal(statuses(), ["sending"] * hanging + ["sent"]))
        sender.release.set()
        assert await eventually(lambda: _equal(statuses(), ["sent"] * (hanging + 1)))
    finally:
        sender.release.set()
        dispatcher.cancel()
        await asyncio.gather(dispatcher, return_exceptions=True)


async def _equal(awaitable, expected) -> bool:
    return await awaitable == expected


async def test_the_texts_sent_today_and_in_7_days_are_counted_for_the_kinds_the_caps_hold(pool):
    """A picked text's context counts the patient's texts sent since their local midnight and
    in the last 7 days for the kinds the caps hold back (a follow-up), and not for the
    critical ones, which may pass them (a confirmation, with no policy saying otherwise)."""
    booked = await book(pool)
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO texts (clinic_id, patient_id, kind, due_at, valid_until, status, sent_at)"
            " SELECT $1, $2, 'session_due', now() - ago, now() + interval '1 day', 'sent',"
            "        now() - ago"
            " FROM unnest(array[interval '0 days', interval '3 days', interval '10 days']) AS ago",
            booked.clinic_id, booked.patient_id)
        follow_up = await conn.fetchval(
            "INSERT INTO texts (clinic_id, patient_id, kind, due_at, valid_until)"
            " VALUES ($1, $2, 'follow_up_due', now(), now() + interval '1 day') RETURNING id",
            booked.clinic_id, booked.patient_id)
        confirmation = await conn.fetchval(
            "SELECT id FROM texts WHERE patient_id = $1 AND kind = 'confirmation'",
            booked.patient_id)
        picked = {t.id: t for t in await store.texts_in_context(conn, CRITICAL_KINDS,
                                                                 [follow_up, confirmation])}
    assert (picked[follow_up].sent_today, picked[follow_up].sent_week) == (1, 2)
    assert (picked[confirmation].sent_today, picked[confirmation].sent_week) == (0, 0)
