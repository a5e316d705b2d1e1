"""The services through a real PgBouncer (Debian's package, 1.18) in transaction pooling
mode, as large deployments run them: the outbox and the consumers (a booking followed to its
text across the three services), two dispatchers sharing the texts by their leases, and a
dispatcher killed with kill -9. Each service's pool goes through PgBouncer with asyncpg's
statement cache off; LISTEN, the relay's leader lock and the migrations take the direct URL.

PgBouncer comes from `make pgbouncer` (which `make test` runs). Without it these tests fail,
they do not skip: `TEST_PGBOUNCER=skip` skips them, saying so, where it cannot be installed.
"""

from __future__ import annotations

import asyncio
import os
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from devstack.fake_twilio import FakeTwilio
from devstack.pgbouncer import PgBouncerMissing, start_pgbouncer, url_for
from services.notifier.dispatcher import Dispatcher
from shared.db import create_pool
from tests.conftest import eventually
from tests.helpers import create_network
from tests.test_notifier_batches import notifier_schema
from tests.test_notifier_claims import ANY_HOUR, InstantSender
from tests.test_notifier_crash import NotifierProcess, kill_mid_call, schedule_text

SERVICES = ("booking", "plans", "notifier")


@pytest.fixture
def bouncer(infra, namespace, tmp_path):
    """PgBouncer in transaction mode with a database entry per schema of this test."""
    if os.environ.get("TEST_PGBOUNCER") == "skip":
        pytest.skip("TEST_PGBOUNCER=skip: the PgBouncer tests did not run")
    schemas = [f"{namespace}_{name}" for name in SERVICES]
    try:
        running = start_pgbouncer(tmp_path / "pgbouncer", infra.database_url, schemas,
                                  pool_size=3)
    except PgBouncerMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield running
    finally:
        running.stop()


def through(bouncer, infra, schema: str) -> dict:
    """The settings that put a service behind `bouncer`."""
    return {"database_url": url_for(bouncer, schema), "database_direct_url": infra.database_url,
            "db_statement_cache_size": 0}


@pytest.fixture
def spine_overrides(bouncer, infra, namespace) -> dict[str, dict]:
    return {name: through(bouncer, infra, f"{namespace}_{name}") for name in SERVICES}


async def test_a_booking_reaches_its_text_through_the_outbox_and_the_consumers_behind_pgbouncer(
        spine, db, bouncer):
    net = await create_network(spine.booking.http)
    tz = ZoneInfo("America/Vancouver")
    starts = (datetime.now(tz) + timedelta(days=6)).replace(hour=10, minute=0, second=0,
                                                             microsecond=0)
    r = await spine.booking.http.post("/bookings", headers=net.headers, json={
        "patient_id": net.patient["id"], "site_id": net.site["id"],
        "session_type": "iv_infusion", "starts_at": starts.isoformat()})
    assert r.status_code == 201, r.text
    schema = spine.notifier.schema

    async def recorded():
        return await db.fetch(f'SELECT body FROM "{schema}".recorded_sms')
    [text] = await eventually(recorded, timeout=30)
    assert "10:00 AM" in text["body"]
    unsent = await db.fetchval(f'SELECT count(*) FROM "{spine.booking.schema}".outbox'
                               " WHERE sent_at IS NULL")
    assert unsent == 0
    logins = bouncer.extra["log"].read_text()
    for name in SERVICES:
        assert f"login attempt: db={spine.services[name].schema} " in logins


@pytest.fixture
async def behind(bouncer, infra, namespace):
    """The notifier's schema, migrated, and two pools on it: through PgBouncer (statement
    cache off) and direct."""
    schema = f"{namespace}_notifier"
    direct = await notifier_schema(infra.database_url, schema)
    pooled = await create_pool(url_for(bouncer, schema), schema, statement_cache_size=0,
                               direct_url=infra.database_url)
    try:
        yield pooled, direct, f'"{schema}"'
    finally:
        await pooled.close()
        await direct.close()


async def test_two_dispatchers_behind_pgbouncer_send_each_text_once_under_their_own_leases(
        behind, db):
    pooled, direct, schema = behind
    ids = {await schedule_text(db, schema) for _ in range(40)}
    senders = [InstantSender("SA"), InstantSender("SB")]
    dispatchers = [Dispatcher(pooled, sender, quiet=ANY_HOUR, batch_size=5, poll_seconds=0.1,
                              lease_seconds=5.0, listen_pool=direct) for sender in senders]
    tasks = [asyncio.create_task(d.run()) for d in dispatchers]
    try:
        async def all_sent():
            return await db.fetchval(f"SELECT count(*) FROM {schema}.texts"
                                     " WHERE status = 'sent'") == 40
        await eventually(all_sent, timeout=30)
        leases = {d.owner for d in dispatchers}
        assert len(leases) == 2 and None not in leases
        assert {r["id"] for r in await db.fetch(f"SELECT id FROM {schema}.dispatcher_leases")} \
            == leases
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    sent = [sms.text_id for sender in senders for sms in sender.sent]
    assert sorted(sent) == sorted(ids), "every text once, by one dispatcher or the other"
    owners = {r["claimed_by"] for r in await db.fetch(f"SELECT claimed_by FROM {schema}.texts")}
    assert owners <= leases
    assert await db.fetchval(f"SELECT count(*) FROM {schema}.dispatcher_leases") == 0, \
        "a stopping dispatcher drops its lease"


@pytest.fixture
async def crashable(bouncer, infra, namespace, db):
    """The notifier as a process behind PgBouncer, a fake Twilio, and its schema."""
    twilio = FakeTwilio()
    await twilio.start()
    schema = f"{namespace}_notifier"
    notifier = NotifierProcess(infra, namespace, twilio)
    # the lease, not the stale-claim time, brings the killed dispatcher's claim back
    notifier.env.update(DATABASE_URL=url_for(bouncer, schema),
                        DATABASE_DIRECT_URL=infra.database_url,
                        DATABASE_STATEMENT_CACHE_SIZE="0", NOTIFIER_STALE_CLAIM_SECONDS="300",
                        NOTIFIER_CALLBACK_GRACE_SECONDS="1", NOTIFIER_DISPATCHER_LEASE_SECONDS="2")
    try:
        yield notifier, twilio, f'"{schema}"'
    finally:
        notifier.stop()
        await twilio.stop()


async def test_a_dispatcher_killed_behind_pgbouncer_has_its_claim_sent_once_when_its_lease_lapses(
        crashable, db):
    notifier, twilio, schema = crashable
    text_id = await kill_mid_call(notifier, twilio, db, schema, accepted=False)
    [lease] = await db.fetch(f"SELECT id FROM {schema}.dispatcher_leases")
    claimed_by = await db.fetchval(f"SELECT claimed_by FROM {schema}.texts WHERE id = $1", text_id)
    assert claimed_by == lease["id"], "the claim is the killed dispatcher's lease's"
    await notifier.start()

    async def sent():
        return await db.fetchval(f"SELECT status = 'sent' FROM {schema}.texts WHERE id = $1",
                                 text_id)
    await eventually(sent, timeout=30)
    [request] = twilio.sent()
    row = await db.fetchrow(f"SELECT provider_sid, attempts, claimed_by FROM {schema}.texts"
                            " WHERE id = $1", text_id)
    assert (row["provider_sid"], row["attempts"]) == (request["sid"], 2)
    assert row["claimed_by"] != lease["id"], "sent under the new dispatcher's lease"


@pytest.fixture
async def two_notifiers(bouncer, infra, namespace):
    """Two notifier processes behind PgBouncer on one schema, and the fake Twilio they call."""
    twilio = FakeTwilio()
    await twilio.start()
    schema = f"{namespace}_notifier"
    notifiers = [NotifierProcess(infra, namespace, twilio) for _ in range(2)]
    for notifier in notifiers:
        notifier.env.update(DATABASE_URL=url_for(bouncer, schema),
                            DATABASE_DIRECT_URL=infra.database_url,
                            DATABASE_STATEMENT_CACHE_SIZE="0", NOTIFIER_DISPATCH_BATCH_SIZE="5",
                            NOTIFIER_TWILIO_SEGMENTS_PER_SECOND="200")
    try:
        await asyncio.gather(*(notifier.start() for notifier in notifiers))  # both migrate
        yield twilio, f'"{schema}"'
    finally:
        for notifier in notifiers:
            notifier.stop()
        await twilio.stop()


async def test_two_notifier_processes_behind_pgbouncer_send_each_text_once(two_notifiers, db):
    twilio, schema = two_notifiers
    leases = {r["id"] for r in await db.fetch(f"SELECT id FROM {schema}.dispatcher_leases")}
    assert len(leases) == 2, "each process holds a lease of its own"
    async with db.transaction():  # all due at once, for both to take
        ids = {await schedule_text(db, schema) for _ in range(40)}

    async def all_sent():
        rows = await db.fetch(f"SELECT id, provider_sid, claimed_by FROM {schema}.texts"
                              " WHERE status = 'sent'")
        return rows if len(rows) == 40 else None
    rows = await eventually(all_sent, timeout=60)
    await asyncio.sleep(1)  # a second send would come within the dispatchers' next polls
    calls = twilio.sent()
    assert len(calls) == 40, "one Twilio call per text"
    assert {r["id"] for r in rows} == ids
    assert {r["provider_sid"] for r in rows} == {c["sid"] for c in calls}
    assert {r["claimed_by"] for r in rows} <= leases


async def test_a_service_whose_pooler_drops_its_search_path_refuses_to_start(infra, namespace):
    from shared.runtime import check_search_path

    schema = f"{namespace}_notifier"
    pool = await create_pool(infra.database_url, "public")
    try:
        with pytest.raises(RuntimeError, match=f"names resolve to schema 'public', not '{schema}'"):
            await check_search_path(pool, schema)
    finally:
        await pool.close()
