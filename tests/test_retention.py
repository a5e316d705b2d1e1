"""Retention on real PostgreSQL: rows past their period go, younger ones stay (counted back
from a literal time), for each table that would grow forever; a running service purges on
its own, and two instances purging at once share the work."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import pytest

from services.notifier.bootstrap import purges as notifier_purges
from services.notifier.settings import NotifierSettings
from services.plans.settings import PlansSettings
from shared.db import SHARED_MIGRATIONS, apply_migrations, create_pool, discover_migrations
from shared.retention import purge, shared_purges
from tests.conftest import eventually, service_settings, start_service, stop_service

NOW = datetime.fromisoformat("2026-03-31T12:00:00+00:00")
NOTIFIER_MIGRATIONS = Path(__file__).resolve().parent.parent / "services" / "notifier" / "migrations"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.fixture
async def pool(infra, namespace):
    pool = await create_pool(infra.database_url, f"{namespace}_ret")
    await apply_migrations(pool, discover_migrations(SHARED_MIGRATIONS, NOTIFIER_MIGRATIONS))
    try:
        yield pool
    finally:
        await pool.close()


async def test_processed_events_older_than_14_days_go_and_younger_ones_stay(pool):
    for consumer, processed_at in [("a", "2026-03-01T00:00:00+00:00"), ("b", "2026-03-17T11:59:59+00:00"),
                                   ("c", "2026-03-17T11:59:58+00:00"), ("d", "2026-03-17T12:00:01+00:00"),
                                   ("e", "2026-03-31T11:00:00+00:00")]:
        await pool.execute("INSERT INTO processed_events (consumer, event_id, processed_at)"
                           " VALUES ($1, gen_random_uuid(), $2)", consumer, at(processed_at))
    deleted = await purge(pool, shared_purges(PlansSettings()), batch_size=2, now=NOW)
    assert deleted == {"processed_events": 3, "outbox": 0, "dead_letters": 0}
    left = await pool.fetch("SELECT consumer FROM processed_events ORDER BY consumer")
    assert [r["consumer"] for r in left] == ["d", "e"]


async def test_sent_outbox_rows_older_than_7_days_go_and_unsent_ones_always_stay(pool):
    for topic, created_at, sent_at in [
            ("sent-long-ago", "2026-03-20T00:00:00+00:00", "2026-03-24T11:59:00+00:00"),
            ("sent-recently", "2026-03-20T00:00:00+00:00", "2026-03-24T12:01:00+00:00"),
            ("never-sent", "2026-01-01T00:00:00+00:00", None)]:
        await pool.execute("INSERT INTO outbox (topic, key, value, created_at, sent_at)"
                           " VALUES ($1, 'k', 'v', $2, $3)", topic, at(created_at),
                           at(sent_at) if sent_at else None)
    await purge(pool, shared_purges(PlansSettings()), batch_size=100, now=NOW)
    left = await pool.fetch("SELECT topic FROM outbox ORDER BY id")
    assert [r["topic"] for r in left] == ["sent-recently", "never-sent"]


async def test_resolved_dead_letters_older_than_30_days_go_with_their_actions_and_pending_ones_stay(pool):
    for offset, status, resolved_at in [(1, "replayed", "2026-03-01T11:59:00+00:00"),
                                        (2, "discarded", "2026-03-01T12:01:00+00:00"),
                                        (3, "pending", None)]:
        letter = await pool.fetchval(
            'INSERT INTO dead_letters (consumer, topic, partition, "offset", value, error, created_at,'
            " status, resolved_at, resolved_by) VALUES ('c', 't', 0, $1, 'x', 'bad',"
            " '2025-01-01T00:00:00Z', $2, $3, $4) RETURNING id", offset, status,
            at(resolved_at) if resolved_at else None, "Sam" if resolved_at else None)
        if resolved_at:
            await pool.execute("INSERT INTO dead_letter_actions (dead_letter_id, action, actor, at)"
                               " VALUES ($1, $2, 'Sam', $3)", letter, status, at(resolved_at))
    await purge(pool, shared_purges(PlansSettings()), batch_size=100, now=NOW)
    left = await pool.fetch('SELECT "offset", status FROM dead_letters ORDER BY id')
    assert [(r["offset"], r["status"]) for r in left] == [(2, "discarded"), (3, "pending")]
    actions = await pool.fetch("SELECT action FROM dead_letter_actions")
    assert [r["action"] for r in actions] == ["discarded"]


async def test_recorded_texts_older_than_30_days_and_early_receipts_older_than_a_day_go(pool):
    for text_id, recorded_at in [(1, "2026-03-01T11:59:00+00:00"), (2, "2026-03-01T12:01:00+00:00")]:
        await pool.execute("INSERT INTO recorded_sms (text_id, to_e164, body, sid, recorded_at)"
                           " VALUES ($1, '+16045550177', 'hi', 'LOCAL1', $2)", text_id, at(recorded_at))
    for sid, received_at in [("SM-old", "2026-03-30T11:59:00+00:00"), ("SM-young", "2026-03-30T12:01:00+00:00")]:
        await pool.execute("INSERT INTO early_receipts (provider_sid, status, received_at)"
                           " VALUES ($1, 'delivered', $2)", sid, at(received_at))
    deleted = await purge(pool, notifier_purges(NotifierSettings()), batch_size=100, now=NOW)
    assert deleted == {"recorded_sms": 1, "early_receipts": 1}
    assert [r["text_id"] for r in await pool.fetch("SELECT text_id FROM recorded_sms")] == [2]
    assert [r["provider_sid"] for r in await pool.fetch("SELECT provider_sid FROM early_receipts")] == ["SM-young"]


async def test_the_periods_are_settings(pool, monkeypatch):
    monkeypatch.setenv("NOTIFIER_RETENTION_RECORDED_SMS_DAYS", "2")
    monkeypatch.setenv("NOTIFIER_RETENTION_PROCESSED_EVENTS_DAYS", "0.5")
    settings = NotifierSettings()
    await pool.execute("INSERT INTO recorded_sms (text_id, to_e164, body, sid, recorded_at)"
                       " VALUES (1, '+16045550177', 'hi', 'LOCAL1', '2026-03-29T11:59:00Z'),"
                       " (2, '+16045550177', 'hi', 'LOCAL2', '2026-03-29T12:01:00Z')")
    await pool.execute("INSERT INTO processed_events (consumer, event_id, processed_at) VALUES"
                       " ('old', gen_random_uuid(), '2026-03-30T23:59:00Z'),"
                       " ('young', gen_random_uuid(), '2026-03-31T00:01:00Z')")
    await purge(pool, [*shared_purges(settings), *notifier_purges(settings)], batch_size=100, now=NOW)
    assert [r["text_id"] for r in await pool.fetch("SELECT text_id FROM recorded_sms")] == [2]
    assert [r["consumer"] for r in await pool.fetch("SELECT consumer FROM processed_events")] == ["young"]


async def test_two_instances_purging_at_once_delete_every_old_row_once(pool):
    await pool.execute("INSERT INTO processed_events (consumer, event_id, processed_at)"
                       " SELECT 'c', gen_random_uuid(), '2026-01-01T00:00:00Z' FROM generate_series(1, 3000)")
    await pool.execute("INSERT INTO processed_events (consumer, event_id, processed_at)"
                       " VALUES ('young', gen_random_uuid(), '2026-03-31T00:00:00Z')")
    events = shared_purges(PlansSettings())[:1]
    one, two = await asyncio.gather(purge(pool, events, batch_size=100, now=NOW),
                                    purge(pool, events, batch_size=100, now=NOW))
    assert one["processed_events"] + two["processed_events"] == 3000
    assert [r["consumer"] for r in await pool.fetch("SELECT consumer FROM processed_events")] == ["young"]


async def test_a_running_notifier_purges_its_tables_on_its_own(infra, namespace, db):
    svc = await start_service("notifier", service_settings(
        "notifier", infra, namespace, retention_interval_seconds=0.2))
    schema = svc.schema
    try:
        await db.execute(f'INSERT INTO "{schema}".recorded_sms (text_id, to_e164, body, sid, recorded_at)'
                         " VALUES (1, '+16045550177', 'hi', 'LOCAL1', '2020-01-01T00:00:00Z'),"
                         " (2, '+16045550177', 'hi', 'LOCAL2', now())")
        await db.execute(f'INSERT INTO "{schema}".processed_events (consumer, event_id, processed_at)'
                         " VALUES ('old', gen_random_uuid(), '2020-01-01T00:00:00Z'),"
                         " ('young', gen_random_uuid(), now())")

        async def purged():
            texts = await db.fetch(f'SELECT text_id FROM "{schema}".recorded_sms')
            events = await db.fetch(f'SELECT consumer FROM "{schema}".processed_events')
            return [r["text_id"] for r in texts] == [2] and [r["consumer"] for r in events] == ["young"]

        await eventually(purged, timeout=10)
    finally:
        await stop_service(svc)
