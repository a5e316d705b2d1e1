"""Contracts between the code and its surroundings: migrations, named SQL, settings, compose."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from services.booking.settings import BookingSettings
from services.notifier.settings import NotifierSettings
from services.plans.settings import PlansSettings
from shared.db import SHARED_MIGRATIONS, apply_migrations, create_pool, discover_migrations
from tests.test_architecture import loaded_queries

ROOT = Path(__file__).resolve().parent.parent
SERVICES = {"booking": BookingSettings, "plans": PlansSettings, "notifier": NotifierSettings}


@pytest.mark.parametrize("service", SERVICES)
async def test_migrations_apply_cleanly_to_an_empty_database_twice(infra, namespace, service):
    migrations = discover_migrations(SHARED_MIGRATIONS, ROOT / "services" / service / "migrations")
    pool = await create_pool(infra.database_url, f"{namespace}_{service}")
    try:
        first = await apply_migrations(pool, migrations)
        assert first == [m.name for m in migrations]
        assert await apply_migrations(pool, migrations) == []
        tables = {r["tablename"] for r in await pool.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
        assert {"outbox", "processed_events", "dead_letters", "schema_migrations"} <= tables
        # every named query of the service (and the shared ones), as its module loads it, is
        # valid SQL against the migrated schema
        folders = {ROOT / "services" / service, ROOT / "shared"}
        async with pool.acquire() as conn:
            for path, queries in loaded_queries().items():
                for name in queries.names() if path.parent in folders else ():
                    await conn.prepare(getattr(queries, name))
    finally:
        await pool.close()


async def test_a_migration_edited_after_it_was_applied_is_refused_with_a_clear_error(infra, namespace):
    from shared.db import Migration, MigrationChanged

    pool = await create_pool(infra.database_url, f"{namespace}_m")
    try:
        await apply_migrations(pool, [Migration("001", "001_t", "CREATE TABLE t (a int)")])
        with pytest.raises(MigrationChanged, match="001_t was changed"):
            await apply_migrations(pool, [Migration("001", "001_t", "CREATE TABLE t (a bigint)")])
    finally:
        await pool.close()


def test_migration_files_are_numbered_and_services_never_reuse_shared_numbers():
    shared = discover_migrations(SHARED_MIGRATIONS)
    assert all(m.version < "100" for m in shared)
    for service in SERVICES:
        own = discover_migrations(ROOT / "services" / service / "migrations")
        assert own and all(m.version >= "100" for m in own)


def test_every_env_var_compose_passes_to_a_service_is_read_by_its_settings_class():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, settings_cls in SERVICES.items():
        env = compose["services"][name]["environment"]
        otel = {var for var in env if var.startswith("OTEL_")}  # the OpenTelemetry SDK's own
        unknown = set(env) - otel - settings_cls.env_names()
        assert not unknown, f"{name} is given env vars no setting reads: {sorted(unknown)}"


def test_a_prefixed_setting_wins_over_the_shared_one(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://shared/db")
    monkeypatch.setenv("PLANS_DATABASE_URL", "postgresql://plans-only/db")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("BOOKING_HTTP_PORT", "9999")
    assert PlansSettings().database_url == "postgresql://plans-only/db"
    assert BookingSettings().database_url == "postgresql://shared/db"
    assert NotifierSettings().kafka_bootstrap_servers == "kafka:9092"
    assert BookingSettings().http_port == 9999
    assert PlansSettings().http_port == 8002


def test_the_event_catalogue_in_docs_is_current():
    from shared.events.catalogue import render

    assert (ROOT / "docs" / "events.md").read_text() == render(), \
        "run: python -m shared.events.catalogue > docs/events.md"


def test_the_asyncapi_documents_in_docs_are_current(tmp_path):
    from devstack.asyncapi import DOCS, export

    for path in export(tmp_path):
        assert path.read_text() == (DOCS / path.name).read_text(), \
            "run: python -m devstack.asyncapi (it rewrites docs/asyncapi/)"
