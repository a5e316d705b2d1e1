"""A service waiting at start-up on a PostgreSQL or a broker that does not answer (a network
partition, a database still recovering) stops when told to, as Kubernetes and compose tell it
with SIGTERM, instead of waiting out its connection timeouts first."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest

from devstack.embedded import free_port
from devstack.stack import ROOT
from tests.conftest import eventually


class Silent:
    """A TCP listener that accepts connections and never answers: what a partitioned or
    hung server looks like to a client."""

    def __init__(self) -> None:
        self.accepted = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def connected(self) -> bool:
        """Whether a client has connected yet."""
        return self.accepted > 0

    async def __aenter__(self) -> Silent:
        async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted += 1
            self._writers.append(writer)

        self._server = await asyncio.start_server(hold, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        for writer in self._writers:
            writer.close()
        assert self._server is not None
        self._server.close()


async def log_after_sigterm(service: str, env: dict[str, str], silent: Silent, log_path) -> str:
    """Start `service`, wait until it is waiting on `silent`, send SIGTERM; its log once it
    has exited (failing if it has not 15 s later)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", f"services.{service}"], cwd=ROOT, stdin=subprocess.DEVNULL,
        stdout=log_path.open("w"), stderr=subprocess.STDOUT,
        env={**os.environ, **env, f"{service.upper()}_HTTP_PORT": str(free_port()),
             "LOG_FORMAT": "text"})
    try:
        await eventually(silent.connected, timeout=60)
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.to_thread(proc.wait), 15)
        except TimeoutError:
            pytest.fail("the service was still starting 15 s after SIGTERM")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return log_path.read_text()


@pytest.mark.parametrize("service", ["booking", "plans", "notifier", "console"])
async def test_a_service_waiting_on_a_silent_postgresql_stops_at_sigterm(service, tmp_path):
    async with Silent() as postgres:
        log = await log_after_sigterm(
            service, {"DATABASE_URL": f"postgresql://kcb@127.0.0.1:{postgres.port}/kcb",
                      "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}, postgres, tmp_path / "log")
    assert "stopped during start-up" in log
    assert "Traceback" not in log


async def test_a_service_waiting_on_a_silent_broker_stops_at_sigterm(infra, namespace, tmp_path):
    async with Silent() as kafka:
        log = await log_after_sigterm(
            "booking", {"DATABASE_URL": infra.database_url,
                        "BOOKING_DB_SCHEMA": f"{namespace}_booking",
                        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka.port}"}, kafka,
            tmp_path / "log")
    assert "stopped during start-up" in log
    assert "Traceback" not in log
