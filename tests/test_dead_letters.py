"""Dead letters on the real broker and PostgreSQL: none is ever lost (not even when the broker
starts empty and offsets repeat), a replay reaches only the consumer that failed the event,
and "replay all" is a job worked in bounded batches that never replays its own letters."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from devstack.embedded import start_tansu
from shared.consumer import EventConsumer
from shared.db import SHARED_MIGRATIONS, apply_migrations, create_pool, discover_migrations
from shared.events.booking import SessionBooked
from shared.kafka import ensure_topics
from shared.outbox import OutboxRelay
from shared.topics import BOOKING_EVENTS, dlq
from tests.conftest import eventually, service_settings, start_service, stop_service
from tests.helpers import records_on

OPS_TOKEN = "test-ops-token"
OPS = {"X-Ops-Token": OPS_TOKEN}


@pytest.fixture
async def plans_and_notifier(infra, namespace):
    """plans and notifier (both consume booking events), with the ops endpoints on."""
    started = []
    try:
        for name in ("plans", "notifier"):
            started.append(await start_service(name, service_settings(
                name, infra, namespace, ops_token=OPS_TOKEN)))
        yield {s.name: s for s in started}
    finally:
        for svc in started:
            await stop_service(svc)


async def publish(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value=value, key=b"k")
    finally:
        await producer.stop()


class OneRun:
    """A consumer's schema, and one run of the broker: poison published to a one-partition
    topic (offsets from 0), each record fetched and handed to the consumer as many times as
    it is delivered, the outbox published, the DLQ read back."""

    def __init__(self, database_url: str, bootstrap: str, namespace: str):
        self.database_url, self.bootstrap = database_url, bootstrap
        self.prefix, self.schema = f"{namespace}.", f"{namespace}_dl"
        self.topic = self.prefix + BOOKING_EVENTS

    async def __aenter__(self) -> OneRun:
        self.pool = await create_pool(self.database_url, self.schema)
        await apply_migrations(self.pool, discover_migrations(SHARED_MIGRATIONS))
        await ensure_topics(self.bootstrap, 1, prefix=self.prefix)
        self.consumer = EventConsumer("test", lambda: self.pool, {SessionBooked: _never},
                                      topic_prefix=self.prefix)
        self.producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap)
        await self.producer.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.producer.stop()
        await self.pool.close()

    async def publish(self, value: bytes) -> int:
        return (await self.producer.send_and_wait(self.topic, value=value, key=b"k")).offset

    async def deliver(self, offset: int, times: int = 1) -> None:
        """Fetch the record at `offset` afresh `times` times, handing it to the consumer each time."""
        for _ in range(times):
            reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
            await reader.start()
            try:
                tp = TopicPartition(self.topic, 0)
                reader.assign([tp])
                reader.seek(tp, offset)
                record = await reader.getone()
            finally:
                await reader.stop()
            await self.consumer.process([record])

    async def dlq_messages(self) -> list[bytes]:
        relay = OutboxRelay(self.pool, self.producer, schema=self.schema, topic_prefix=self.prefix)
        while await relay.publish_batch():
            pass
        return await records_on(self.bootstrap, self.prefix + dlq(BOOKING_EVENTS))

    async def letters(self) -> list[tuple]:
        return [tuple(r) for r in await self.pool.fetch(
            'SELECT partition, "offset", value FROM dead_letters ORDER BY id')]


async def _never(conn, env) -> None:
    raise AssertionError("no event is handled here")


async def test_two_poison_messages_at_the_same_offset_of_a_recreated_topic_each_get_a_letter_and_a_dlq_message(
        infra, namespace, tmp_path):
    async with OneRun(infra.database_url, infra.bootstrap_servers, namespace) as first:
        assert await first.publish(b"{first poison") == 0
        await first.deliver(0)
        assert await first.dlq_messages() == [b"{first poison"]
    fresh = start_tansu(log_file=tmp_path / "tansu.log")  # the next run's broker starts empty
    try:
        async with OneRun(infra.database_url, fresh.url, namespace) as second:
            assert await second.publish(b"{second poison") == 0
            await second.deliver(0)
            assert await second.dlq_messages() == [b"{second poison"]
            assert await second.letters() == [(0, 0, b"{first poison"), (0, 0, b"{second poison")]
    finally:
        fresh.stop()


async def test_the_same_record_delivered_twice_makes_one_letter_and_one_dlq_message(infra, namespace):
    async with OneRun(infra.database_url, infra.bootstrap_servers, namespace) as run:
        assert await run.publish(b"{poison") == 0
        assert await run.publish(b"{poison") == 1  # the same bytes again: another message
        await run.deliver(0, times=2)
        await run.deliver(1)
        assert await run.letters() == [(0, 0, b"{poison"), (0, 1, b"{poison")]
        assert await run.dlq_messages() == [b"{poison", b"{poison"]


async def letters(svc, status: str = "all") -> list[dict]:
    response = await svc.http.get("/ops/dlq", params={"status": status}, headers=OPS)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def count_letters(svc, status: str, expected: int) -> bool:
    return len(await letters(svc, status)) == expected


async def test_replaying_the_notifiers_letters_leaves_plans_untouched(plans_and_notifier, infra, namespace):
    plans, notifier = plans_and_notifier["plans"], plans_and_notifier["notifier"]
    poison = [b"{not an event %d" % i for i in range(8)]
    await publish(infra.bootstrap_servers, f"{namespace}.{BOOKING_EVENTS}", poison)
    await eventually(lambda: count_letters(plans, "pending", 8), timeout=30)
    await eventually(lambda: count_letters(notifier, "pending", 8), timeout=30)
    plans_consumer = plans.runtime.consumers[0]
    before = Counter(handled=plans_consumer.stats.handled, ignored=plans_consumer.stats.ignored,
                     dead_lettered=plans_consumer.stats.dead_lettered)
    assert before["dead_lettered"] == 8

    for letter in await letters(notifier, "pending"):
        answer = await notifier.http.post(f"/ops/dlq/{letter['id']}/replay", json={"actor": "Sam"},
                                          headers=OPS)
        assert answer.status_code == 200, answer.text
    # still poison: the notifier dead-letters each replayed copy again (8 new letters)
    await eventually(lambda: count_letters(notifier, "pending", 8), timeout=30)
    assert len(await letters(notifier)) == 16
    await asyncio.sleep(1.0)  # time for plans to see the replays, had they reached it
    assert len(await letters(plans)) == 8, "plans dead-lettered the notifier's replays"
    assert plans_consumer.stats.handled == before["handled"]
    assert plans_consumer.stats.dead_lettered == 8
    assert plans_consumer.stats.ignored == before["ignored"] + 8


@pytest.fixture
async def letters_pool(infra, namespace):
    """A schema with the shared tables and 8 pending letters of consumer "notifier" (ids 1-8)
    and 2 of "plans" (ids 9-10)."""
    pool = await create_pool(infra.database_url, f"{namespace}_jobs")
    await apply_migrations(pool, discover_migrations(SHARED_MIGRATIONS))
    await pool.execute(
        'INSERT INTO dead_letters (consumer, topic, partition, "offset", key, value, error)'
        " SELECT CASE WHEN i <= 8 THEN 'notifier' ELSE 'plans' END, 't.booking.events', 0, i,"
        " 'k', ('{poison ' || i)::bytea, 'invalid event' FROM generate_series(1, 10) AS i")
    try:
        yield pool
    finally:
        await pool.close()


async def test_a_replay_job_works_in_bounded_batches_and_skips_letters_resolved_meanwhile(letters_pool):
    from shared import dead_letters

    async with letters_pool.acquire() as conn:
        job = await dead_letters.start_replay_job(conn, actor="Sam", consumer="notifier", batch_size=3)
    assert (job["status"], job["total"], job["replayed"], job["remaining"]) == ("running", 8, 0, 8)

    assert await dead_letters.replay_job_step(letters_pool, topic_prefix="t.") is True
    async with letters_pool.acquire() as conn:
        after_one = await dead_letters.get_replay_job(conn, job["id"])
        await dead_letters.discard_letter(conn, 5, actor="Alex", reason="known garbage")
    assert (after_one["replayed"], after_one["remaining"]) == (3, 5)

    # another instance, or this one after a restart, goes on from the database alone
    while await dead_letters.replay_job_step(letters_pool, topic_prefix="t."):
        pass
    async with letters_pool.acquire() as conn:
        done = await dead_letters.get_replay_job(conn, job["id"])
    assert (done["status"], done["replayed"], done["skipped"], done["remaining"]) == ("done", 7, 1, 0)
    assert done["finished_at"] is not None
    statuses = await letters_pool.fetch("SELECT id, status FROM dead_letters ORDER BY id")
    assert [r["status"] for r in statuses] == ["replayed"] * 4 + ["discarded"] + ["replayed"] * 3 \
        + ["pending"] * 2, "only the notifier's letters, each once"
    actions = await letters_pool.fetch(
        "SELECT dead_letter_id, actor, reason, at FROM dead_letter_actions"
        " WHERE action = 'replayed' ORDER BY dead_letter_id")
    assert [(a["dead_letter_id"], a["actor"], a["reason"]) for a in actions] == [
        (i, "Sam", f"replay job {job['id']}") for i in (1, 2, 3, 4, 6, 7, 8)]
    batches: dict = {}  # one transaction per batch of 3 (letter 5 was discarded meanwhile)
    for a in actions:
        batches.setdefault(a["at"], []).append(a["dead_letter_id"])
    assert sorted(batches.values()) == [[1, 2, 3], [4, 6], [7, 8]]
    replays = await letters_pool.fetch("SELECT topic, headers FROM outbox ORDER BY id")
    assert [r["topic"] for r in replays] == ["booking.events"] * 7
    assert '"dlq.consumer": "notifier"' in replays[0]["headers"]


async def test_a_second_replay_job_waits_until_the_first_is_done(letters_pool):
    from shared import dead_letters
    from shared.errors import Conflict

    async with letters_pool.acquire() as conn:
        first = await dead_letters.start_replay_job(conn, actor="Sam", consumer=None, batch_size=100)
        with pytest.raises(Conflict) as refused:
            await dead_letters.start_replay_job(conn, actor="Alex", consumer=None, batch_size=100)
        assert refused.value.details == {"job_id": first["id"]}
    assert await dead_letters.replay_job_step(letters_pool) is False  # all 10 in one batch: done
    async with letters_pool.acquire() as conn:
        second = await dead_letters.start_replay_job(conn, actor="Alex", consumer=None, batch_size=100)
    assert (second["status"], second["total"]) == ("done", 0), "nothing pending: done at once"


async def follow(svc, location: str) -> dict:
    job = (await svc.http.get(location, headers=OPS)).json()
    return job if job["status"] == "done" else None


async def test_replay_all_answers_at_once_and_never_replays_the_letters_its_replays_create(
        plans_and_notifier, infra, namespace):
    notifier = plans_and_notifier["notifier"]
    await publish(infra.bootstrap_servers, f"{namespace}.{BOOKING_EVENTS}",
                  [b"{poison %d" % i for i in range(5)])
    await eventually(lambda: count_letters(notifier, "pending", 5), timeout=30)

    answer = await notifier.http.post("/ops/dlq/replay", headers=OPS,
                                      json={"actor": "Sam", "consumer": "notifier", "batch_size": 2})
    assert answer.status_code == 202, answer.text
    started = answer.json()
    assert (started["service"], started["total"], started["consumer"], started["batch_size"]) == (
        "notifier", 5, "notifier", 2)
    job = await eventually(lambda: follow(notifier, answer.headers["location"]), timeout=30)
    assert (job["replayed"], job["skipped"], job["remaining"]) == (5, 0, 0)
    # still poison: each replayed copy is dead-lettered again, and stays pending
    await eventually(lambda: count_letters(notifier, "pending", 5), timeout=30)
    await asyncio.sleep(1.0)
    assert len(await letters(notifier)) == 10, "the job replayed only the 5 it started with"
    assert len(await letters(notifier, "replayed")) == 5
    listed = (await notifier.http.get("/ops/dlq/replay", headers=OPS)).json()["items"]
    assert [j["id"] for j in listed] == [started["id"]]


async def test_replay_jobs_refuse_bad_input_naming_the_field(plans_and_notifier):
    notifier = plans_and_notifier["notifier"]

    async def refused(method: str, url: str, **kwargs) -> list[str]:
        answer = await notifier.http.request(method, url, headers=OPS, **kwargs)
        assert answer.status_code == 422, (url, answer.text)
        return [f["path"] for f in answer.json()["fields"]]

    assert await refused("POST", "/ops/dlq/replay", json={"actor": "Sam", "batch_size": 0}) == ["body.batch_size"]
    assert await refused("POST", "/ops/dlq/replay", json={"actor": "Sam", "batch_size": 5000}) == ["body.batch_size"]
    answer = await notifier.http.post("/ops/dlq/replay", headers=OPS,
                                      json={"actor": "Sam", "consumer": "no-such-consumer"})
    assert answer.status_code == 422 and "no-such-consumer" not in answer.text
    assert [f["path"] for f in answer.json()["fields"]] == ["body.consumer"]
    assert await refused("GET", "/ops/dlq/replay/0") == ["path.job_id"]
    assert await refused("GET", f"/ops/dlq/replay/{2**63}") == ["path.job_id"]
    assert await refused("GET", "/ops/dlq/replay", params={"limit": -1}) == ["query.limit"]
    assert await refused("GET", "/ops/dlq/replay", params={"limit": 101}) == ["query.limit"]
    assert (await notifier.http.get("/ops/dlq/replay/424242", headers=OPS)).status_code == 404
    assert (await notifier.http.get("/ops/dlq/replay/1")).status_code == 401


async def test_a_replay_job_started_elsewhere_is_finished_by_a_running_instance(
        plans_and_notifier, infra, namespace):
    from shared import dead_letters

    notifier = plans_and_notifier["notifier"]
    await publish(infra.bootstrap_servers, f"{namespace}.{BOOKING_EVENTS}", [b"{poison"])
    await eventually(lambda: count_letters(notifier, "pending", 1), timeout=30)
    # as if the instance that accepted the job died at once: only the database knows of it
    pool = await create_pool(infra.database_url, notifier.schema)
    try:
        async with pool.acquire() as conn:
            job = await dead_letters.start_replay_job(conn, actor="Sam", consumer=None, batch_size=10)
    finally:
        await pool.close()
    done = await eventually(lambda: follow(notifier, f"/ops/dlq/replay/{job['id']}"), timeout=20)
    assert (done["replayed"], done["remaining"]) == (1, 0)
