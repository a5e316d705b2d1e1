"""The narrow database interface every service uses: a pool bound to the service's own
schema, numbered SQL migrations, and named queries loaded once from `.sql` files."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

_MIGRATION = re.compile(r"^(\d{3,})_[\w-]+\.sql$")
SHARED_MIGRATIONS = Path(__file__).parent / "migrations"

Connection: TypeAlias = asyncpg.Connection | PoolConnectionProxy
"""A connection of its own or one taken from a pool (which asyncpg hands out as a proxy):
the code takes either."""

TRANSIENT = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    OSError,
    TimeoutError,
)
"""Failures that say nothing about the work, only about the database at that moment (a
restart, a failover, a lost connection, a conflict with another transaction): the same
transaction tried again later can succeed."""

T = TypeVar("T")
log = logging.getLogger(__name__)


class DatabaseUnavailable(Exception):
    """The database did not take the work within its time budget; nothing was written."""


async def transaction_retried(pool: asyncpg.Pool, work: Callable[[Connection], Awaitable[T]],
                              *, budget: float, first_wait: float = 0.1) -> T:
    """`work` in a transaction of its own, tried again on a transient failure (`TRANSIENT`)
    with doubling waits until `budget` seconds have passed; then `DatabaseUnavailable`.

    Only for work that is safe to repeat (idempotent), such as a webhook that its sender
    would retry anyway: a failure at commit may leave it unknown whether the first try took.
    """
    deadline, wait = time.monotonic() + budget, first_wait
    while True:
        try:
            async with pool.acquire() as conn, conn.transaction():
                return await work(conn)
        except TRANSIENT as exc:
            if time.monotonic() + wait > deadline:
                raise DatabaseUnavailable(type(exc).__name__) from exc
            log.warning("database unavailable (%s): trying again in %.1f s",
                        type(exc).__name__, wait)
            await asyncio.sleep(wait)
            wait = min(wait * 2, 2.0)


async def create_pool(url: str, schema: str, *, min_size: int = 1, max_size: int = 10,
                      statement_cache_size: int = 100, direct_url: str | None = None,
                      ) -> asyncpg.Pool:
    """A pool whose connections use `schema` (created if missing) as their search path.

    `statement_cache_size`: asyncpg's prepared statements per connection (0 behind a
    PgBouncer in transaction mode older than 1.21). `direct_url`: a direct session for
    creating the schema under a session advisory lock (default `url`)."""
    conn = await asyncpg.connect(direct_url or url)
    try:  # IF NOT EXISTS still races between instances starting together: serialise
        await conn.execute(Q.lock_schema_creation, schema)
        await conn.execute(await conn.fetchval(Q.create_schema_statement, schema))
    finally:
        await conn.close()  # ends the session, and so its advisory lock
    return await asyncpg.create_pool(
        url, min_size=min_size, max_size=max_size, reset=_no_reset_query,
        statement_cache_size=statement_cache_size,
        server_settings={"search_path": schema, "application_name": schema},
    )


async def _no_reset_query(conn: Connection) -> None:
    """Skip asyncpg's reset query on release (one round trip per request). asyncpg still rolls
    back an open transaction and drops listeners; our code keeps no other session state on a
    pooled connection: the workers that LISTEN or take advisory locks undo them themselves
    (and a lost connection ends both)."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationChanged(RuntimeError):
    """An applied migration's file was edited: write a new migration instead."""


def discover_migrations(*folders: Path) -> list[Migration]:
    """Numbered migrations from the shared folder and a service's own, in order.

    Shared migrations are versioned `000_*`-`009_*`... and sort before a service's own by
    their prefix: shared files use `0xx`, services `1xx` and up.
    """
    found: dict[str, Migration] = {}
    for folder in folders:
        for path in sorted(Path(folder).glob("*.sql")):
            m = _MIGRATION.match(path.name)
            if not m:
                raise ValueError(f"migration file {path} must be named NNN_name.sql")
            if m.group(1) in found:
                raise ValueError(f"two migrations share version {m.group(1)}")
            found[m.group(1)] = Migration(m.group(1), path.stem, path.read_text())
    return [found[v] for v in sorted(found)]


async def apply_migrations(pool: asyncpg.Pool, migrations: list[Migration]) -> list[str]:
    """Apply the migrations not yet applied, each in its own transaction, under an advisory
    lock so that several instances starting together apply each once. Returns the applied.
    The lock is a session's: `pool` must be direct (not through PgBouncer in transaction
    mode)."""
    applied: list[str] = []
    async with pool.acquire() as conn:
        schema = await conn.fetchval(Q.search_path)
        await conn.execute(Q.lock_migrations, schema)
        try:
            await conn.execute(Q.create_migrations_table)
            done = {r["version"]: r["checksum"] for r in await conn.fetch(Q.applied_migrations)}
            for mig in migrations:
                if mig.version in done:
                    if done[mig.version] != mig.checksum:
                        raise MigrationChanged(
                            f"migration {mig.name} was changed after it was applied to schema "
                            f"{schema}; add a new migration instead "
                            "(or start from an empty database)"
                        )
                    continue
                async with conn.transaction():
                    await conn.execute(mig.sql)
                    await conn.execute(Q.record_migration, mig.version, mig.name, mig.checksum)
                applied.append(mig.name)
        finally:
            await conn.execute(Q.unlock_migrations, schema)
    return applied


class Queries:
    """Named SQL loaded once from a `.sql` file with `-- name: query_name` headers.

    A block headed `-- fragment: name` is not a query: a line `-- include: name` in a query
    is replaced by it (for a part that two queries share). `fragments` adds fragments made
    in Python, e.g. the outbox rows of events built in SQL (`shared.outbox.insert_events_sql`),
    so that SQL generated from a model has one source."""

    def __init__(self, path: Path | str, fragments: Mapping[str, str] | None = None):
        self.path = Path(path)
        text = self.path.read_text()
        self._sql: dict[str, str] = {}
        found: dict[str, str] = {}
        for kind, name, body in re.findall(
            r"^-- (name|fragment): (\S+)\n(.*?)(?=^-- (?:name|fragment): |\Z)",
            text,
            flags=re.M | re.S,
        ):
            (self._sql if kind == "name" else found)[name] = body.strip()
        shadowed = set(self._sql) & {"path", "names"}
        if shadowed:
            raise ValueError(f"{path}: a query may not be named {sorted(shadowed)}")
        clash = set(found) & set(fragments or {})
        if clash:
            raise ValueError(f"{path}: fragments {sorted(clash)} are given twice")
        found.update(fragments or {})

        def fragment(match: re.Match[str]) -> str:
            if match.group(1) not in found:
                raise ValueError(f"{path}: no fragment named {match.group(1)!r}")
            return found[match.group(1)]

        for name, sql in self._sql.items():
            self._sql[name] = re.sub(r"^-- include: (\S+)$", fragment, sql, flags=re.M)

    def __getattr__(self, name: str) -> str:
        try:
            return self._sql[name]
        except KeyError:
            raise AttributeError(f"no query named {name!r}") from None

    def names(self) -> list[str]:
        """The names of the file's queries (not its fragments), sorted."""
        return sorted(self._sql)


Q = Queries(Path(__file__).with_name("db.sql"))
"""The plumbing's own statements (schemas, migrations, a ping)."""
