"""The transactional outbox and its relay, on real PostgreSQL and a real broker."""

from __future__ import annotations

import asyncio
from pathlib import Path
from uuid import UUID

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from devstack.embedded import start_tansu
from shared.db import SHARED_MIGRATIONS, apply_migrations, create_pool, discover_migrations
from shared.events import parse_envelope
from shared.events.notifier import SmsSent
from shared.kafka import ensure_topics
from shared.outbox import OutboxRelay, enqueue, insert_events_sql, insert_row_sql, row
from shared.outbox import Q as OUTBOX
from shared.topics import BOOKING_EVENTS
from tests.conftest import eventually, service_settings, start_service, stop_service
from tests.helpers import create_network, session_booked
from tests.test_booking_rules import next_local


async def read_all(bootstrap: str, topic: str, expected: int, timeout: float = 20.0) -> list:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    got = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(got) < expected and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for msgs in batch.values():
                got.extend(msgs)
    finally:
        await consumer.stop()
    return got


@pytest.fixture
async def outbox_pool(infra, namespace):
    pool = await create_pool(infra.database_url, f"{namespace}_o")
    await apply_migrations(pool, discover_migrations(SHARED_MIGRATIONS))
    yield pool
    await pool.close()


async def test_an_event_rolled_back_with_its_state_change_is_never_published(outbox_pool):
    with pytest.raises(RuntimeError):
        async with outbox_pool.acquire() as conn, conn.transaction():
            await enqueue(conn, [session_booked()])
            raise RuntimeError("the state change failed")
    assert await outbox_pool.fetchval("SELECT count(*) FROM outbox") == 0


async def test_events_built_in_sql_from_the_model_read_back_as_those_events(outbox_pool):
    clinic, patient, booking = (UUID(f"00000000-0000-0000-0000-00000000000{i}") for i in (1, 2, 3))
    fields = {"text_id": "id", "kind": "kind", "booking_id": "booking_id",
              "provider_sid": "sid", "segments": "segments"}
    events = insert_events_sql(SmsSent, source="sent", producer="notifier", event_id="event_id",
                               clinic_id="clinic_id", patient_id="patient_id", payload=fields,
                               order_by="id")
    await outbox_pool.execute(
        "WITH sent AS (SELECT * FROM (VALUES (7::bigint, 'prep', $3::uuid, 'SM7', 2),"
        " (8, 'reminder', NULL, 'SM8', 1)) AS v(id, kind, booking_id, sid, segments),"
        " LATERAL (SELECT $1::uuid AS clinic_id, $2::uuid AS patient_id,"
        " gen_random_uuid() AS event_id) e)"
        f", events AS ({events}) SELECT 1", clinic, patient, booking)
    rows = await outbox_pool.fetch("SELECT * FROM outbox ORDER BY id")
    got = [parse_envelope(r["value"]) for r in rows]
    assert [e.payload for e in got] == [
        SmsSent(text_id=7, kind="prep", booking_id=booking, provider_sid="SM7", segments=2),
        SmsSent(text_id=8, kind="reminder", booking_id=None, provider_sid="SM8", segments=1)]
    for r, e in zip(rows, got, strict=True):
        assert (r["topic"], r["key"], r["event_type"]) == (
            "notifier.events", b"00000000-0000-0000-0000-000000000002", "SmsSent")
        assert (e.event_id, e.correlation_id, e.causation_id) == (r["event_id"], r["event_id"], None)
        assert (e.event_type, e.schema_version, e.producer, e.clinic_id, e.patient_id) == (
            "SmsSent", 1, "notifier", clinic, patient)


async def test_an_event_made_in_python_is_written_by_sql_only_with_its_state_change(outbox_pool):
    env = session_booked()
    query = f"WITH changed AS (SELECT 1 WHERE $1), announced AS ({insert_row_sql(2, source='changed')}) SELECT 1"
    await outbox_pool.execute(query, False, *row(env))
    assert await outbox_pool.fetchval("SELECT count(*) FROM outbox") == 0
    await outbox_pool.execute(query, True, *row(env))
    stored = await outbox_pool.fetchrow("SELECT * FROM outbox")
    assert (stored["topic"], stored["key"], stored["event_id"], stored["event_type"]) == (
        "booking.events", str(env.patient_id).encode(), env.event_id, "SessionBooked")
    assert parse_envelope(stored["value"]) == env


async def test_a_failed_publish_is_recorded_on_its_rows_before_they_are_claimed_again(outbox_pool):
    class Refusing:
        async def send(self, *args, **kwargs):
            raise ConnectionError("broker gone")

    async with outbox_pool.acquire() as conn:
        await enqueue(conn, [session_booked(), session_booked()])
    relay = OutboxRelay(outbox_pool, Refusing(), schema="unused")  # type: ignore[arg-type]
    with pytest.raises(ConnectionError):
        await relay.publish_batch()
    with pytest.raises(ConnectionError):
        await relay.publish_batch()  # waits for the first failure's bookkeeping first
    await asyncio.gather(*relay._bookkeeping)
    rows = await outbox_pool.fetch("SELECT attempts, last_error, sent_at FROM outbox ORDER BY id")
    assert [tuple(r) for r in rows] == [(2, "ConnectionError('broker gone')", None)] * 2


async def test_one_relay_publishes_while_another_stands_by_and_each_patients_order_holds(
        infra, namespace, outbox_pool):
    prefix = f"{namespace}."
    await ensure_topics(infra.bootstrap_servers, 6, [BOOKING_EVENTS], prefix=prefix)
    producers = [AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers) for _ in range(2)]
    for p in producers:
        await p.start()
    relays = [OutboxRelay(outbox_pool, p, schema=f"{namespace}_o", topic_prefix=prefix,
                          batch_size=50, poll_seconds=0.1) for p in producers]
    tasks = [asyncio.create_task(r.run()) for r in relays]
    try:
        await eventually(lambda: _true(any(r.is_leader for r in relays)))
        await asyncio.sleep(0.3)
        assert sum(r.is_leader for r in relays) == 1
        patients = [session_booked().patient_id for _ in range(3)]
        sent = []
        for i in range(90):
            env = session_booked(patient_id=patients[i % 3])
            sent.append(env)
            async with outbox_pool.acquire() as conn, conn.transaction():
                await enqueue(conn, [env])
            if i == 45:  # the leader goes away mid-stream: the other takes over
                leader = next(i for i, r in enumerate(relays) if r.is_leader)
                tasks[leader].cancel()
        await eventually(lambda: _unsent_is_zero(outbox_pool), timeout=30)
        got = await read_all(infra.bootstrap_servers, prefix + BOOKING_EVENTS, len(sent))
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for p in producers:
            await p.stop()
    received = [parse_envelope(m.value) for m in got]
    assert {e.event_id for e in received} == {e.event_id for e in sent}
    for patient in patients:
        order_sent = [e.event_id for e in sent if e.patient_id == patient]
        order_got = [e.event_id for e in received if e.patient_id == patient]
        deduped = list(dict.fromkeys(order_got))
        assert deduped == order_sent


async def _true(value):
    return value


async def _unsent_is_zero(pool):
    return await pool.fetchval("SELECT count(*) = 0 FROM outbox WHERE sent_at IS NULL")


async def test_the_outbox_holds_events_while_the_broker_is_paused_and_delivers_them_after(
        infra, namespace, tmp_path: Path):
    broker = start_tansu(log_file=tmp_path / "tansu.log")  # our own: this test pauses it
    booking = None
    try:
        settings = service_settings("booking", infra, namespace)
        settings = settings.model_copy(update={"kafka_bootstrap_servers": broker.url})
        booking = await start_service("booking", settings)
        net = await create_network(booking.http)
        site, patient = net.site, net.patient
        await eventually(lambda: _unsent_is_zero(booking.runtime.db))

        broker.pause()
        resp = await booking.http.post("/bookings", headers=net.headers, json={
            "patient_id": patient["id"], "site_id": site["id"], "session_type": "assessment",
            "starts_at": next_local("America/Vancouver", days=30)})
        assert resp.status_code == 201, "booking works while the broker is down"
        await asyncio.sleep(3)
        row = await booking.runtime.db.fetchrow(
            "SELECT sent_at FROM outbox WHERE event_type = 'SessionBooked'")
        assert row["sent_at"] is None, "the event waits in the outbox"

        broker.resume()
        await eventually(lambda: _unsent_is_zero(booking.runtime.db), timeout=60)
        got = await read_all(broker.url, f"{namespace}.{BOOKING_EVENTS}", 3)
        booked = [parse_envelope(m.value) for m in got if b"SessionBooked" in m.value]
        assert booked and all(str(e.payload.booking_id) == resp.json()["id"] for e in booked)
    finally:
        broker.resume()
        if booking is not None:
            await stop_service(booking)
        broker.stop()


async def _notifications(pool, schema: str, write, seconds: float = 0.3) -> int:
    """How many NOTIFYs on the relay's channel `write(conn)` caused (listened to on a
    session of its own)."""
    heard = []

    def hear(*args) -> None:
        heard.append(args)

    async with pool.acquire() as listening:
        await listening.add_listener(f"{schema}_outbox", hear)
        try:
            async with pool.acquire() as conn:
                await write(conn)
            await asyncio.sleep(seconds)
        finally:
            await listening.remove_listener(f"{schema}_outbox", hear)
    return len(heard)


async def test_a_writer_notifies_the_relay_only_while_it_waits(namespace, outbox_pool):
    """A writer's NOTIFY (a database-wide lock at commit) is for a relay that waits: one that
    does not is publishing and looks for rows again by itself."""
    schema = f"{namespace}_o"
    assert await _notifications(outbox_pool, schema,
                                lambda conn: enqueue(conn, [session_booked()])) == 0
    async with outbox_pool.acquire() as relay_session:
        assert await relay_session.fetchval(OUTBOX.start_waiting, schema) is True
        assert await _notifications(outbox_pool, schema,
                                    lambda conn: enqueue(conn, [session_booked()])) == 1
        assert await relay_session.fetchval(OUTBOX.stop_waiting, schema) is True
    assert await _notifications(outbox_pool, schema,
                                lambda conn: enqueue(conn, [session_booked()])) == 0


async def test_the_relay_cannot_start_waiting_while_a_writer_that_did_not_notify_is_open(
        namespace, outbox_pool):
    """Else it could wait past the rows of a writer that committed after its last look."""
    schema = f"{namespace}_o"
    async with outbox_pool.acquire() as relay_session, outbox_pool.acquire() as writer:
        transaction = writer.transaction()
        await transaction.start()
        await enqueue(writer, [session_booked()])
        assert await relay_session.fetchval(OUTBOX.start_waiting, schema) is False
        await transaction.commit()
        assert await relay_session.fetchval(OUTBOX.start_waiting, schema) is True
        assert await relay_session.fetchval(OUTBOX.stop_waiting, schema) is True


async def test_a_waiting_relay_publishes_a_row_when_its_writer_commits_not_at_its_next_poll(
        infra, namespace, outbox_pool):
    prefix = f"{namespace}."
    await ensure_topics(infra.bootstrap_servers, 1, [BOOKING_EVENTS], prefix=prefix)
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers)
    await producer.start()
    relay = OutboxRelay(outbox_pool, producer, schema=f"{namespace}_o", topic_prefix=prefix,
                        poll_seconds=60)
    task = asyncio.create_task(relay.run())
    try:
        await eventually(lambda: _true(relay._waiting))
        async with outbox_pool.acquire() as conn:
            await enqueue(conn, [session_booked()])
        await eventually(lambda: _unsent_is_zero(outbox_pool), timeout=10)
        await eventually(lambda: _true(relay._waiting))  # and waits again
        async with outbox_pool.acquire() as conn:
            await enqueue(conn, [session_booked()])
        await eventually(lambda: _unsent_is_zero(outbox_pool), timeout=10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await producer.stop()
    assert relay.published == 2
