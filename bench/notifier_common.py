"""Set-up shared by the notifier benchmarks: a notifier schema, texts seeded in bulk, a
sender that answers at once, and lateness figures."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from services.notifier import handlers
from services.notifier.schedule import QuietHours
from services.notifier.senders import OutgoingSms, SmsSender
from services.notifier.settings import NotifierSettings
from shared.db import SHARED_MIGRATIONS, apply_migrations, create_pool, discover_migrations
from shared.settings import ServiceSettings

MIGRATIONS = Path(handlers.__file__).with_name("migrations")
DEPLOYED_POOL_MIN = ServiceSettings.model_fields["db_pool_min_size"].default
"""The connections a notifier process's pool keeps open, as deployed (`db_pool_min_size`)."""
DEPLOYED_BATCH = NotifierSettings.model_fields["dispatch_batch_size"].default
"""Texts a notifier's dispatcher claims at once, as deployed (`dispatch_batch_size`)."""
ANY_HOUR = QuietHours(start=24, end=0)
"""Benchmarks must not depend on the hour they run at."""

# Patients i = 1..n of 5 networks, each with a dosing appointment (200 different start times
# over two days, in three languages) and one text per kind in $2, due at $3 + i * $4 seconds.
SEED_DUE = """
WITH p AS (
    SELECT i, md5('patient' || i)::uuid AS patient_id, md5('clinic' || (i % 5))::uuid AS clinic_id,
           date_trunc('hour', now()) + interval '3 days' + (i % 200) * interval '15 minutes' AS starts
    FROM generate_series(1, $1) AS i
), c AS (
    INSERT INTO contacts (patient_id, clinic_id, phone_e164, language, sms_consent)
    SELECT patient_id, clinic_id, '+1604555' || lpad((i % 10000)::text, 4, '0'),
           (array['en', 'fr', 'es'])[i % 3 + 1], true FROM p
), a AS (
    INSERT INTO appointments (booking_id, clinic_id, patient_id, version, schedule_version,
                              clinic_name, clinic_phone, site_name, site_address, site_phone,
                              site_timezone, session_type, is_dosing, fasting_rule, starts_at,
                              ends_at, site_id, site_region)
    SELECT md5('booking' || i)::uuid, clinic_id, patient_id, 1, 1, 'Cedar Clinic',
           '+1 604 555 0100', 'Main', '1 Main St', '+1 604 555 0101', 'America/Vancouver',
           'iv_infusion', true, 'solids_6h_clear_liquids_2h', starts, starts + interval '90 minutes',
           md5('site' || (i % 5))::uuid, 'CA-BC' FROM p
)
INSERT INTO texts (clinic_id, patient_id, booking_id, booking_version, kind, due_at, valid_until)
SELECT clinic_id, patient_id, md5('booking' || i)::uuid, 1, kind,
       $3::timestamptz + i * make_interval(secs => $4), starts
FROM p, unnest($2::text[]) AS kind
ORDER BY i
"""

# n texts about no booking due in the next 30 days (never due during a run).
SEED_FUTURE = """
INSERT INTO texts (clinic_id, patient_id, kind, due_at, valid_until)
SELECT md5('clinic' || (i % 5))::uuid, md5('future' || i)::uuid, 'session_due',
       now() + interval '1 hour' + (i % 2592000) * interval '1 second', now() + interval '40 days'
FROM generate_series(1, $1) AS i
"""


async def notifier_pool(db: str, schema: str, max_size: int = 10,
                        fresh: bool = True, min_size: int = 1) -> asyncpg.Pool:
    """A pool on a notifier schema (emptied first if `fresh`; migrations applied), keeping
    `min_size` connections open (`DEPLOYED_POOL_MIN` for a notifier process's)."""
    if fresh:
        admin = await asyncpg.connect(db)
        try:
            await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await admin.close()
    pool = await create_pool(db, schema, max_size=max_size, min_size=min_size)
    await apply_migrations(pool, discover_migrations(SHARED_MIGRATIONS, MIGRATIONS))
    return pool


async def seed_due(pool: asyncpg.Pool, patients: int, kinds=("confirmation", "prep"), *,
                   first_due_in: float = -1.0, every: float = 0.0) -> int:
    """Texts for `patients` patients (one per kind), the i-th patient's due `first_due_in` +
    i * `every` seconds from now. Returns how many texts."""
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO clinic_policies (clinic_id, quiet_hours_start, quiet_hours_end, daily_cap)"
            " SELECT md5('clinic' || i)::uuid, 24, 0, 5 FROM generate_series(0, 4) AS i"
            " ON CONFLICT DO NOTHING")
        start = await conn.fetchval("SELECT now() + make_interval(secs => $1)", first_due_in)
        status = await conn.execute(SEED_DUE, patients, list(kinds), start, every)
        # the tables seeded, not the whole database (every benchmark's schemas: seconds
        # under load, which texts due soon after seeding spent waiting)
        await conn.execute("ANALYZE texts, contacts, appointments, clinic_policies")
    return int(status.split()[-1])


async def seed_future(pool: asyncpg.Pool, n: int) -> None:
    async with pool.acquire() as conn:
        await conn.execute(SEED_FUTURE, n)
        await conn.execute("ANALYZE texts")


class ZeroLatencySender(SmsSender):
    """An `SmsSender` that takes every text at once."""

    async def send(self, sms: OutgoingSms) -> str:
        return f"SM{sms.text_id:032d}"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def lateness(pool: asyncpg.Pool, ids_from: int = 0) -> list[float]:
    """sent_at - due_at, in seconds, of every sent text with id >= `ids_from`."""
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT extract(epoch FROM sent_at - due_at) AS late FROM texts"
                                " WHERE status = 'sent' AND id >= $1", ids_from)
    return [float(r["late"]) for r in rows]
