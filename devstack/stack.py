"""Start and stop the whole system as separate processes: PostgreSQL and the broker (the
embedded ones unless configured), optionally a Twilio-compatible server, then the three
services (each possibly as several instances on their own ports, sharing the database and
the consumer groups). Used by `make run`, `make demo`, the end-to-end test, the benchmarks
and the load driver, which also uses the fault helpers: `kill`, `restart`, `pause_broker`,
`resume_broker` and `restart_postgres`."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from devstack.embedded import (
    ManagedProcess,
    die_with_parent,
    free_port,
    log_to,
    start_postgres,
    start_tansu,
    wait_for_port,
)
from shared.sealed import new_key

log = logging.getLogger("devstack")
ROOT = Path(__file__).resolve().parent.parent
SERVICES = {"booking": 8001, "plans": 8002, "notifier": 8003, "console": 8004}


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
    instances: dict[str, int] = field(default_factory=dict)
    """How many processes each service runs (default 1); extra ones get free ports."""
    twilio: bool = False
    """Start the Twilio-compatible server (devstack.fake_twilio) and point the notifier at it."""
    postgres_settings: tuple[str, ...] = ()
    """Settings (`name=value`) of the embedded PostgreSQL, on top of its defaults."""
    processes: list[ManagedProcess] = field(default_factory=list)
    postgres: ManagedProcess | None = None
    broker: ManagedProcess | None = None
    twilio_server: ManagedProcess | None = None

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
        self.env.setdefault("ONLINE_CODE_KEY", os.environ.get("ONLINE_CODE_KEY")
                            or self.kept_secret("online-code-key", new_key))
        self.env.setdefault("OPS_PEERS", ",".join(f"{n}={self.url(n)}" for n in self.ports
                                                  if n != "console"))
        self.env.setdefault("LOG_FORMAT", os.environ.get("LOG_FORMAT", "text"))  # for people
        self.start_infrastructure()
        self.write_secret("ops-token", self.env["OPS_TOKEN"])  # for kcb-ops
        self.write_secret("admin-token", self.env["BOOKING_ADMIN_TOKEN"])  # for POST /clinics
        # for kcb-ops: the services are where this stack started them (removed by `stop`)
        self.peers_file.write_text("\n".join(self.env["OPS_PEERS"].split(",")) + "\n")
        ports = {(name, i): self.ports[name] if i == 0 else free_port()
                 for name in self.ports for i in range(self.instances.get(name, 1))}
        if self.twilio:
            self.start_twilio([f"http://127.0.0.1:{port}" for (name, _), port in ports.items()
                               if name == "notifier"])
        for (name, i), port in ports.items():
            self.start_service(name, instance=i, port=port)
        self.wait_ready()

    def kept_secret(self, name: str, make: Callable[[], str]) -> str:
        """A secret of the data directory, made (by `make`) the first time: kept across runs
        (the verification codes sealed in earlier runs' events stay readable)."""
        path = self.data_dir / name
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        value = make()
        self.write_secret(name, value)
        return value

    def write_secret(self, name: str, value: str) -> None:
        """Write a token into the data directory, readable by its owner only."""
        path = self.data_dir / name
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(value)

    @property
    def peers_file(self) -> Path:
        """Where kcb-ops finds the services this stack runs (`name=url` a line)."""
        return self.data_dir / "ops-peers"

    def start_infrastructure(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env}
        if not env.get("DATABASE_URL"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.postgres = start_postgres(self.data_dir / "postgres", fsync=self.fsync,
                                               settings=self.postgres_settings)
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
        for name in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"):  # external ones: say where
            if env.get(name):
                self.env.setdefault(name, env[name])

    def start_twilio(self, notifier_urls: list[str]) -> ManagedProcess:
        """Start the Twilio-compatible server as a process; the notifier sends through it, and
        it posts signed receipts to the notifier instances in turn (`notifier_urls`)."""
        port = free_port()
        sid, token = "AC" + "0" * 32, secrets.token_hex(16)
        args = [sys.executable, "-m", "devstack.fake_twilio", "--port", str(port),
                "--account-sid", sid, "--auth-token", token]
        for url in notifier_urls:
            args += ["--webhook-base", url]
        with open(self.data_dir / "fake-twilio.log", "ab") as out:
            proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True,
                                    preexec_fn=die_with_parent(signal.SIGTERM))
        self.twilio_server = ManagedProcess("fake-twilio", proc, url=f"http://127.0.0.1:{port}",
                                            extra={"port": port, "account_sid": sid,
                                                   "auth_token": token})
        wait_for_port("127.0.0.1", port, 30, proc)
        self.env.update(
            {
                "NOTIFIER_TWILIO_ACCOUNT_SID": sid,
                "NOTIFIER_TWILIO_AUTH_TOKEN": token,
                "NOTIFIER_TWILIO_API_BASE_URL": self.twilio_server.url,
                "NOTIFIER_TWILIO_FROM_NUMBER": "+15005550006",
                "NOTIFIER_PUBLIC_BASE_URL": notifier_urls[0]
                if notifier_urls
                else self.url("notifier"),
            }
        )
        return self.twilio_server

    def service_env(self, name: str, port: int | None = None) -> dict[str, str]:
        prefix = name.upper()
        env = {**os.environ, **self.env, f"{prefix}_HTTP_PORT": str(port or self.ports[name]),
               "PYTHONUNBUFFERED": "1"}
        if name == "console":  # the console reaches the services where this stack runs them
            for other in ("booking", "plans", "notifier"):
                if other in self.ports:
                    env.setdefault(f"CONSOLE_{other.upper()}_URL", self.url(other))
        return env

    def start_service(
        self, name: str, instance: int = 0, port: int | None = None
    ) -> ManagedProcess:
        """Start one process of service `name` (instance 0 on `ports[name]`)."""
        port = port or self.ports[name]
        label = name if instance == 0 else f"{name}-{instance + 1}"
        with log_to(self.data_dir / f"{label}.log" if self.quiet else None, None) as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", f"services.{name}"], cwd=ROOT,
                env=self.service_env(name, port), stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGTERM))
        mp = ManagedProcess(label, proc, url=f"http://127.0.0.1:{port}",
                            extra={"service": name, "instance": instance, "port": port})
        self.processes.append(mp)
        return mp

    def service_processes(self, name: str) -> list[ManagedProcess]:
        return [mp for mp in self.processes if mp.extra.get("service") == name]

    def kill(self, mp: ManagedProcess) -> None:
        """`kill -9` one service process (it stays in `processes` until restarted)."""
        if mp.proc.poll() is None:
            mp.proc.kill()
        mp.proc.wait()

    def restart(self, mp: ManagedProcess, wait: bool = True) -> ManagedProcess:
        """Start `mp`'s service instance again on the same port (after `kill` or a crash)."""
        if mp.proc.poll() is None:
            mp.stop()
        self.processes.remove(mp)
        new = self.start_service(mp.extra["service"], mp.extra["instance"], mp.extra["port"])
        if wait:
            self.wait_ready([new])
        return new

    def pause_broker(self) -> None:
        """SIGSTOP the embedded broker (tansu keeps topics in memory: never restart it)."""
        assert self.broker is not None, "only the embedded broker can be paused"
        self.broker.pause()

    def resume_broker(self) -> None:
        assert self.broker is not None
        self.broker.resume()

    def restart_postgres(self) -> None:
        """Stop the embedded PostgreSQL (fast shutdown) and start it on the same data
        directory and port; the services reconnect on their own."""
        assert self.postgres is not None, "only the embedded PostgreSQL can be restarted"
        port = self.postgres.extra["port"]
        self.postgres.stop()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.postgres = start_postgres(self.data_dir / "postgres", port=port, fsync=self.fsync,
                                           settings=self.postgres_settings)

    @property
    def admin_token(self) -> str:
        return self.env["BOOKING_ADMIN_TOKEN"]

    def load_demo_network(self) -> dict:
        from devstack.demo import load_network

        return load_network(self.url("booking"), self.admin_token, self.data_dir / "demo-api-key")

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def wait_ready(
        self, processes: list[ManagedProcess] | None = None, timeout: float = 90.0
    ) -> None:
        deadline = time.monotonic() + timeout
        for mp in self.processes if processes is None else processes:
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
        for infra in (self.twilio_server, self.broker, self.postgres):
            if infra is not None:
                infra.stop()
        self.twilio_server = self.broker = self.postgres = None
        self.peers_file.unlink(missing_ok=True)
