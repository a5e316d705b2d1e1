"""Start and stop the whole system as separate processes: PostgreSQL and the broker (the
embedded ones unless configured), then the three services. Used by `make run`, `make demo`,
the end-to-end test and the benchmarks."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from shared.embedded import ManagedProcess, _die_with_parent, start_postgres, start_tansu

log = logging.getLogger("devstack")
ROOT = Path(__file__).resolve().parent.parent
SERVICES = {"booking": 8001, "plans": 8002, "notifier": 8003}


def _default_ports() -> dict[str, int]:
    return {name: int(os.environ.get(f"{name.upper()}_HTTP_PORT", port))
            for name, port in SERVICES.items()}


def _default_data_dir() -> Path:
    return Path(os.environ.get("DEVSTACK_DATA_DIR", ROOT / ".data"))


@dataclass
class Stack:
    """The running system. Use as a context manager: everything started is stopped."""

    data_dir: Path = field(default_factory=_default_data_dir)
    ports: dict[str, int] = field(default_factory=_default_ports)
    fsync: bool = True
    env: dict[str, str] = field(default_factory=dict)
    quiet: bool = False
    processes: list[ManagedProcess] = field(default_factory=list)
    postgres: ManagedProcess | None = None
    broker: ManagedProcess | None = None

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self.env.setdefault("BOOKING_ADMIN_TOKEN", os.environ.get("BOOKING_ADMIN_TOKEN")
                            or secrets.token_urlsafe(24))
        self.env.setdefault("OPS_TOKEN", os.environ.get("OPS_TOKEN") or secrets.token_urlsafe(24))
        self.env.setdefault("OPS_PEERS", ",".join(f"{n}={self.url(n)}" for n in self.ports))
        self.env.setdefault("LOG_FORMAT", os.environ.get("LOG_FORMAT", "text"))  # for people
        self.start_infrastructure()
        (self.data_dir / "ops-token").write_text(self.env["OPS_TOKEN"])  # for kcb-ops
        for name in self.ports:
            self.start_service(name)
        self.wait_ready()

    def start_infrastructure(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env}
        if not env.get("DATABASE_URL"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.postgres = start_postgres(self.data_dir / "postgres", fsync=self.fsync)
            self.env["DATABASE_URL"] = self.postgres.url
            log.info("embedded PostgreSQL on port %s (data in %s)",
                     self.postgres.extra["port"], self.data_dir / "postgres")
        if not env.get("KAFKA_BOOTSTRAP_SERVERS"):
            self.broker = start_tansu(log_file=self.data_dir / "tansu.log")
            self.env["KAFKA_BOOTSTRAP_SERVERS"] = self.broker.url
            # a local single-broker set-up: join consumer groups quickly
            self.env.setdefault("KAFKA_SESSION_TIMEOUT_MS", "3000")
            self.env.setdefault("KAFKA_HEARTBEAT_INTERVAL_MS", "500")
            log.info("embedded tansu broker on %s", self.broker.url)

    def service_env(self, name: str) -> dict[str, str]:
        prefix = name.upper()
        return {**os.environ, **self.env, f"{prefix}_HTTP_PORT": str(self.ports[name]),
                "PYTHONUNBUFFERED": "1"}

    def start_service(self, name: str) -> ManagedProcess:
        out = subprocess.DEVNULL if self.quiet else None
        if self.quiet:
            out = open(self.data_dir / f"{name}.log", "ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"], cwd=ROOT, env=self.service_env(name),
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=_die_with_parent(signal.SIGTERM))
        if self.quiet:
            out.close()
        mp = ManagedProcess(name, proc, url=f"http://127.0.0.1:{self.ports[name]}")
        self.processes.append(mp)
        return mp

    @property
    def admin_token(self) -> str:
        return self.env["BOOKING_ADMIN_TOKEN"]

    def load_demo_network(self) -> dict:
        from devstack.demo import load_network

        return load_network(self.url("booking"), self.admin_token, self.data_dir / "demo-api-key")

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        for mp in self.processes:
            while True:
                if mp.proc.poll() is not None:
                    raise RuntimeError(f"{mp.name} exited with {mp.proc.returncode} while starting")
                try:
                    if httpx.get(f"{mp.url}/ready", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{mp.name} not ready after {timeout:.0f}s")
                time.sleep(0.2)

    def stop(self) -> None:
        """Stop services first (they flush), then the broker, then PostgreSQL."""
        for mp in reversed(self.processes):
            if mp.proc.poll() is None:
                mp.proc.send_signal(signal.SIGTERM)
        for mp in reversed(self.processes):
            mp.stop(timeout=15)
        self.processes.clear()
        for infra in (self.broker, self.postgres):
            if infra is not None:
                infra.stop()
        self.broker = self.postgres = None
