"""`python -m bench.table_sizes [--rows N]`: bytes per row of the tables that grow, for the
README's Scale section. Fills each service's schema (its migrations applied) with N rows
shaped like real ones (bench/table_sizes.sql: done bookings, sent and delivered texts with a
two-segment body, sent outbox rows with a 700-byte event, the booking events' average) and
prints heap, indexes and TOAST per row. PostgreSQL: BENCH_DATABASE_URL, or an embedded one."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from shared.db import SHARED_MIGRATIONS, Queries, apply_migrations, create_pool, discover_migrations

ROOT = Path(__file__).resolve().parent.parent
Q = Queries(Path(__file__).with_suffix(".sql"))
EVENT_BYTES = 700
GROWING = {"bookings", "patients", "plans", "plan_sessions", "texts", "appointments", "contacts",
           "inbound_messages", "outbox", "processed_events"}


def plan(rows: int) -> dict[str, list[tuple[str, tuple, str, int]]]:
    """Per service: (query, arguments, table, rows it makes) in the order they must run."""
    shared = [("shared_1_outbox", (rows, EVENT_BYTES), "outbox", rows),
              ("shared_2_processed_events", (rows,), "processed_events", rows)]
    return {
        "booking": [("booking_1_clinics", (), "clinics", 1), ("booking_2_sites", (), "sites", 100),
                    ("booking_3_rooms", (), "rooms", 500), ("booking_4_providers", (), "providers", 500),
                    ("booking_5_patients", (rows,), "patients", rows // 2 + 1),
                    ("booking_6_bookings", (rows,), "bookings", rows), *shared],
        "plans": [("plans_1_plans", (rows,), "plans", rows // 6 + 1),
                  ("plans_2_plan_sessions", (rows,), "plan_sessions", rows), *shared],
        "notifier": [("notifier_1_texts", (rows,), "texts", rows),
                     ("notifier_2_appointments", (rows,), "appointments", rows),
                     ("notifier_3_contacts", (rows,), "contacts", rows),
                     ("notifier_4_inbound_messages", (rows,), "inbound_messages", rows), *shared],
    }


async def measure(database_url: str, rows: int, schema_prefix: str = "") -> dict[tuple[str, str], float]:
    """Bytes per row of each table that grows, by (service, table)."""
    sizes = {}
    for service, steps in plan(rows).items():
        pool = await create_pool(database_url, schema_prefix + service)
        try:
            await apply_migrations(pool, discover_migrations(
                SHARED_MIGRATIONS, ROOT / "services" / service / "migrations"))
            for query, args, _, _ in steps:
                await pool.execute(getattr(Q, query), *args)
            await pool.execute(Q.vacuum)
            for _, _, table, made in steps:
                if table in GROWING:
                    total = await pool.fetchval(Q.total_bytes, f"{schema_prefix + service}.{table}")
                    sizes[(service, table)] = total / made
        finally:
            await pool.close()
    return sizes


def main(argv: list[str] | None = None) -> None:
    from bench.common import infrastructure

    p = argparse.ArgumentParser(prog="python -m bench.table_sizes", description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=50_000)
    args = p.parse_args(argv)
    with infrastructure() as (database_url, _):
        sizes = asyncio.run(measure(database_url, args.rows))
    print(f"bytes per row ({args.rows:,} rows a table: heap, indexes, TOAST)")
    for (service, table), size in sizes.items():
        print(f"   {service:<9} {table:<18} {size:>6,.0f}")


if __name__ == "__main__":
    main()
