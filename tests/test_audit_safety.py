"""The audit trail kept safe (issue 20): the services' role may only read and append; an
entry edited in the database breaks the hash chain where it was edited (`kcb-ops audit
verify`); retention purges whole days past the setting and records it; a clean stop writes
every read, a kill loses at most the last second's."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from uuid import uuid4

import asyncpg
import httpx
import pytest

from devstack.embedded import free_port
from shared import audit_chain
from tests.conftest import ADMIN_TOKEN, eventually
from tests.helpers import create_network

ROOT = Path(__file__).resolve().parent.parent
OPS_TOKEN = "audit-safety-ops-token"


def as_user(url: str, user: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{user}@{parts.hostname}:{parts.port}"))


async def test_the_services_role_may_read_and_append_audit_rows_but_never_change_or_delete_them(
        booking, db, infra):
    net = await create_network(booking.http)
    await booking.runtime.audit.flush(booking.runtime.db)
    schema = booking.schema
    role = f"svc_{uuid4().hex[:8]}"
    await db.execute(f"CREATE ROLE {role} LOGIN IN ROLE kcb_service")
    await db.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO {role}')
    try:
        conn = await asyncpg.connect(as_user(infra.database_url, role),
                                     server_settings={"search_path": schema})
        try:
            assert await conn.fetchval("SELECT count(*) FROM audit_log") > 0
            await conn.execute("INSERT INTO audit_log (actor_kind, action, resource, outcome)"
                               " VALUES ('system', 'test', 'test', 'allowed')")
            for statement in ("UPDATE audit_log SET outcome = 'refused'", "DELETE FROM audit_log",
                              "TRUNCATE audit_log", "UPDATE audit_seals SET hash = ''",
                              "DELETE FROM audit_seals"):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute(statement)
            with pytest.raises(asyncpg.CheckViolationError):  # the purge keeps a year at least
                await conn.fetchval("SELECT audit_purge(now() - interval '30 days')")
        finally:
            await conn.close()
    finally:
        await db.execute(f'REVOKE USAGE ON SCHEMA "{schema}" FROM {role}')
        await db.execute(f"DROP ROLE {role}")
    # the trigger holds for the tables' owner and superusers too (the embedded default)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await db.execute(f'UPDATE "{schema}".audit_log SET outcome = $1', "refused")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await db.execute(f'DELETE FROM "{schema}".audit_log')
    assert await db.fetchval("SELECT tableowner FROM pg_tables WHERE schemaname = $1"
                             " AND tablename = 'audit_log'", schema) == "kcb_audit"
    assert net.clinic["id"]


async def _edit_behind_the_triggers(db, schema: str, entry_id: int) -> None:
    """What someone with the database's superuser could do: switch the triggers off."""
    async with db.transaction():
        await db.execute("SET LOCAL session_replication_role = replica")
        await db.execute(f'UPDATE "{schema}".audit_log SET outcome = $1 WHERE id = $2',
                         "allowed", entry_id)


async def all_sealed(svc, db) -> None:
    """Write the service's kept reads and wait until every entry has its link (the service's
    own sealer may hold the sealing lock when the test asks)."""
    await svc.runtime.audit.flush(svc.runtime.db)

    async def none_unsealed() -> bool:
        await audit_chain.seal(svc.runtime.db)
        return await db.fetchval(
            f'SELECT count(*) = 0 FROM "{svc.schema}".audit_log a WHERE NOT EXISTS'
            f' (SELECT 1 FROM "{svc.schema}".audit_seals s WHERE s.entry_id = a.id)')
    await eventually(none_unsealed)


async def test_an_entry_edited_in_the_database_breaks_the_chain_at_its_link(booking, db):
    net = await create_network(booking.http)
    await booking.http.get(f"/patients/{uuid4()}", headers=net.headers)  # not found
    await all_sealed(booking, db)
    pool, schema = booking.runtime.db, booking.schema
    whole = await audit_chain.verify(pool)
    assert (whole["ok"], whole["first_broken"]) == (True, None)
    assert whole["checked"] == await db.fetchval(f'SELECT count(*) FROM "{schema}".audit_log')

    entry_id, seq, day = await db.fetchrow(
        f'SELECT a.id, s.seq, s.day FROM "{schema}".audit_log a JOIN "{schema}".audit_seals s'
        " ON s.entry_id = a.id WHERE a.outcome = 'not_found'")
    await _edit_behind_the_triggers(db, schema, entry_id)
    broken = await audit_chain.verify(pool)
    assert broken["ok"] is False
    assert broken["first_broken"] == {"day": day.isoformat(), "seq": seq, "entry_id": entry_id,
                                      "reason": "the entry was changed"}


async def test_a_deleted_entry_breaks_the_chain_too(booking, db):
    net = await create_network(booking.http)
    await all_sealed(booking, db)
    schema = booking.schema
    first = await db.fetchval(f'SELECT min(entry_id) FROM "{schema}".audit_seals')
    async with db.transaction():
        await db.execute("SET LOCAL session_replication_role = replica")
        await db.execute(f'DELETE FROM "{schema}".audit_log WHERE id = $1', first)
    broken = await audit_chain.verify(booking.runtime.db)
    assert broken["first_broken"]["entry_id"] == first
    assert broken["first_broken"]["reason"] == "the entry was deleted"
    assert net.site["id"]


async def test_retention_purges_whole_days_past_the_setting_and_records_the_purge(booking, db):
    schema = booking.schema
    now = datetime.now(UTC)
    for years_ago in (7, 5):
        await db.execute(f'INSERT INTO "{schema}".audit_log (at, actor_kind, action, resource, outcome)'
                         " VALUES ($1, 'key', 'get_patient', 'GET /patients', 'allowed')",
                         now - timedelta(days=365 * years_ago))
    assert await audit_chain.purge(booking.runtime.db, 2190, now) == 1
    left = [r["at"].year for r in await db.fetch(
        f'SELECT at FROM "{schema}".audit_log WHERE action = $1', "get_patient")]
    assert left == [(now - timedelta(days=365 * 5)).year]
    purge = await db.fetchrow(f'SELECT actor_kind, actor_label, outcome, resource FROM "{schema}".audit_log'
                              " WHERE action = 'audit_purge'")
    cutoff = (now - timedelta(days=2190)).date().isoformat()
    assert tuple(purge) == ("system", "retention", "allowed",
                            f"DELETE audit_log before {cutoff} (1 entries)")
    assert await audit_chain.purge(booking.runtime.db, 2190, now) == 0  # nothing more to do


class BookingProcess:
    """The booking service as its own process (to stop it cleanly, or kill it)."""

    def __init__(self, infra, namespace: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "DATABASE_URL": infra.database_url,
                    "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap_servers,
                    "KAFKA_TOPIC_PREFIX": f"{namespace}.", "BOOKING_DB_SCHEMA": f"{namespace}_booking",
                    "BOOKING_HTTP_PORT": str(self.port), "BOOKING_ADMIN_TOKEN": ADMIN_TOKEN,
                    "OPS_TOKEN": OPS_TOKEN, "OPS_PEERS": f"booking={self.url}",
                    "KAFKA_SESSION_TIMEOUT_MS": "2000", "KAFKA_HEARTBEAT_INTERVAL_MS": "300",
                    "LOG_LEVEL": "WARNING"}
        self.proc: subprocess.Popen | None = None

    async def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "services.booking"], cwd=ROOT,
                                     env=self.env, stdin=subprocess.DEVNULL)

        async def ready():
            try:
                async with httpx.AsyncClient() as http:
                    return (await http.get(f"{self.url}/ready")).status_code == 200
            except httpx.HTTPError:
                return False
        await eventually(ready, timeout=90)

    def end(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
async def booking_process(infra, namespace):
    process = BookingProcess(infra, namespace)
    try:
        yield process
    finally:
        process.end(signal.SIGKILL)


async def test_a_clean_stop_writes_every_read_and_a_kill_loses_at_most_the_last_second(booking_process, db):
    await booking_process.start()
    async with httpx.AsyncClient(base_url=booking_process.url) as http:
        net = await create_network(http)
        patient = f"/patients/{net.patient['id']}"
        assert (await http.get(patient, headers=net.headers)).status_code == 200
    booking_process.end(signal.SIGTERM)  # at once: the read is still in memory
    schema = booking_process.env["BOOKING_DB_SCHEMA"]

    async def reads() -> int:
        return await db.fetchval(f'SELECT count(*) FROM "{schema}".audit_log WHERE action = $1',
                                 "get_patient")
    assert await reads() == 1

    await booking_process.start()
    async with httpx.AsyncClient(base_url=booking_process.url) as http:
        assert (await http.get(patient, headers=net.headers)).status_code == 200
        await asyncio.sleep(1.0)  # older than a second: written
        assert (await http.get(patient, headers=net.headers)).status_code == 200
    booking_process.end(signal.SIGKILL)
    assert await reads() in (2, 3)  # the last read may be lost, never the one before


async def test_kcb_ops_audit_verify_reports_the_first_broken_link_and_fails(booking_process, db):
    await booking_process.start()
    async with httpx.AsyncClient(base_url=booking_process.url) as http:
        net = await create_network(http)
        assert (await http.get(f"/patients/{net.patient['id']}", headers=net.headers)).status_code == 200
    env = {**booking_process.env, "COLUMNS": "250"}

    def kcb_ops(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "opsctl", "audit", "verify", *args], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=60)
    done = await asyncio.to_thread(kcb_ops)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "│ ok " in done.stdout and "the entry was" not in done.stdout

    schema = booking_process.env["BOOKING_DB_SCHEMA"]
    entry_id, seq = await db.fetchrow(
        f'SELECT a.id, s.seq FROM "{schema}".audit_log a JOIN "{schema}".audit_seals s'
        " ON s.entry_id = a.id WHERE a.action = 'get_patient'")
    async with db.transaction():
        await db.execute("SET LOCAL session_replication_role = replica")
        await db.execute(f'UPDATE "{schema}".audit_log SET patient_ids = $1 WHERE id = $2',
                         [uuid4()], entry_id)
    done = await asyncio.to_thread(kcb_ops)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"#{seq} (entry {entry_id}): the entry was changed" in done.stdout
