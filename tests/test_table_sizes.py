"""The measurement behind the README's Scale section (bench/table_sizes.py): it fills every
table that grows, in each service's migrated schema, and gives bytes per row."""

from __future__ import annotations

from bench.table_sizes import measure


async def test_the_table_sizes_measurement_fills_and_measures_every_table_that_grows(infra, namespace):
    sizes = await measure(infra.database_url, 1200, schema_prefix=f"{namespace}_")
    assert set(sizes) == {
        ("booking", "bookings"), ("booking", "patients"), ("booking", "outbox"),
        ("booking", "processed_events"), ("plans", "plans"), ("plans", "plan_sessions"),
        ("plans", "outbox"), ("plans", "processed_events"), ("notifier", "texts"),
        ("notifier", "appointments"), ("notifier", "contacts"), ("notifier", "inbound_messages"),
        ("notifier", "outbox"), ("notifier", "processed_events")}
    # every row counted costs more than its bare tuple header and less than a page
    assert all(60 < size < 8192 for size in sizes.values()), sizes
    # an outbox row carries its 700-byte event
    assert sizes[("booking", "outbox")] > 700
