"""The notifier's consumer takes a batch of booking events at once (bookings scheduled with a
few statements); the texts are the same as when the events are taken one by one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from services.notifier import handlers
from services.notifier.schedule import QuietHours
from shared.db import SHARED_MIGRATIONS, apply_migrations, create_pool, discover_migrations
from shared.events import Envelope
from shared.events.booking import SessionBooked, SessionCancelled, SessionRescheduled
from tests.helpers import session_booked

QUIET = QuietHours()
NOW = datetime(2026, 6, 1, 16, 0, tzinfo=UTC)  # 09:00 in Vancouver: not the wall clock


def moved(env: Envelope, days: int) -> Envelope:
    b = env.payload
    fields = {**b.model_dump(), "version": 2, "starts_at": b.starts_at + timedelta(days=days),
              "ends_at": b.ends_at + timedelta(days=days), "previous_starts_at": b.starts_at,
              "previous_ends_at": b.ends_at}
    return Envelope.new(SessionRescheduled(**fields), producer="booking", clinic_id=env.clinic_id,
                        patient_id=env.patient_id)


def cancelled(env: Envelope) -> Envelope:
    b = env.payload
    return Envelope.new(SessionCancelled(
        booking_id=b.booking_id, version=3, session_type=b.session_type, is_dosing=b.is_dosing,
        site_id=b.site_id, starts_at=b.starts_at, reason="ill", cancelled_by="staff"),
        producer="booking", clinic_id=env.clinic_id, patient_id=env.patient_id)


def stream() -> list[Envelope]:
    starts = NOW + timedelta(days=6)
    kept = [session_booked(starts_in=timedelta(0), starts_at=starts + timedelta(hours=i),
                           ends_at=starts + timedelta(hours=i, minutes=90), is_dosing=i % 2 == 0)
            for i in range(4)]
    doomed = session_booked(starts_at=starts, ends_at=starts + timedelta(hours=1))
    return [kept[0], doomed, kept[1], moved(doomed, 1), kept[2], cancelled(doomed), kept[3],
            kept[0]]  # the last one: a booking we already hold


async def notifier_schema(url: str, schema: str):
    pool = await create_pool(url, schema)
    migrations = Path(handlers.__file__).with_name("migrations")
    await apply_migrations(pool, discover_migrations(SHARED_MIGRATIONS, migrations))
    return pool


async def texts(pool) -> list[tuple]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT booking_id, booking_version, kind, due_at, valid_until,"
                                " status, status_reason FROM texts")
    return sorted(tuple(r) for r in rows)


async def test_a_batch_of_booking_events_plans_the_same_texts_as_one_event_at_a_time(infra, namespace):
    each = {SessionBooked: partial(handlers.on_session_booked, quiet=QUIET, now=NOW),
            SessionRescheduled: partial(handlers.on_session_rescheduled, quiet=QUIET, now=NOW),
            SessionCancelled: handlers.on_booking_over}
    one_by_one = await notifier_schema(infra.database_url, f"{namespace}_each")
    batched = await notifier_schema(infra.database_url, f"{namespace}_batch")
    try:
        events = stream()
        async with one_by_one.acquire() as conn, conn.transaction():
            for env in events:
                await each[type(env.payload)](conn, env)
        batch = handlers.in_order(each, partial(handlers.on_sessions_booked, quiet=QUIET, now=NOW))
        async with batched.acquire() as conn, conn.transaction():
            await batch(conn, events)
        expected = await texts(one_by_one)
        assert await texts(batched) == expected
        assert len({t[0] for t in expected}) == 5
        assert any(t[5] == "cancelled" for t in expected), "the moved then cancelled booking"
    finally:
        await one_by_one.close()
        await batched.close()
