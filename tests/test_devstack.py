"""`make run` leaves nothing behind: Ctrl-C stops every process it started, and so does the
death of the launcher itself. While it runs, a service process that dies is started again
(the rest stays up), its tokens are in the data directory, and kcb-ops finds its services."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from devstack.embedded import free_port
from devstack.stack import ROOT


def start_launcher(tmp_path) -> tuple[subprocess.Popen, list[psutil.Process]]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")}
    env.update({"DEVSTACK_DATA_DIR": str(tmp_path), "BOOKING_HTTP_PORT": str(free_port()),
                "PLANS_HTTP_PORT": str(free_port()), "NOTIFIER_HTTP_PORT": str(free_port()),
                "CONSOLE_HTTP_PORT": str(free_port())})
    with open(tmp_path / "launcher.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "devstack", "run"], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while b"Ctrl-C stops everything" not in (tmp_path / "launcher.log").read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("launcher did not start:\n" + (tmp_path / "launcher.log").read_text()[-3000:])
        time.sleep(0.2)
    children = psutil.Process(proc.pid).children(recursive=True)
    assert len(children) >= 6, "postgres, the broker, three services and the console"
    return proc, children


def wait_all_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for p in alive:
        p.kill()
    return alive


def ctrl_c_stops_everything(tmp_path) -> tuple[int, list]:
    proc, children = start_launcher(tmp_path)
    proc.send_signal(signal.SIGINT)
    code = proc.wait(60)
    return code, wait_all_gone(children, 5)


def launcher_death_stops_everything(tmp_path) -> list:
    proc, children = start_launcher(tmp_path)
    proc.kill()
    proc.wait()
    return wait_all_gone(children, 30)


async def test_ctrl_c_on_make_run_stops_every_process_it_started(tmp_path):
    code, left = await asyncio.to_thread(ctrl_c_stops_everything, tmp_path)
    assert code == 0
    assert left == []


async def test_killing_the_launcher_leaves_no_orphan(tmp_path):
    left = await asyncio.to_thread(launcher_death_stops_everything, tmp_path)
    assert left == []


@dataclass
class Launcher:
    proc: subprocess.Popen
    data_dir: Path

    def peers(self) -> dict[str, str]:
        lines = (self.data_dir / "ops-peers").read_text().split()
        return dict(line.split("=", 1) for line in lines)

    def service(self, name: str) -> psutil.Process:
        [found] = [p for p in psutil.Process(self.proc.pid).children(recursive=True)
                   if p.cmdline()[-2:] == ["-m", f"services.{name}"]]
        return found


@pytest.fixture(scope="module")
def launcher(tmp_path_factory):
    """`make run` (python -m devstack run) on free ports, stopped with Ctrl-C afterwards."""
    data_dir = tmp_path_factory.mktemp("make-run")
    proc, _ = start_launcher(data_dir)
    try:
        yield Launcher(proc, data_dir)
    finally:
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
        assert wait_all_gone(children, 5) == []
        assert not (data_dir / "ops-peers").exists(), "the peers are gone with the services"


@pytest.mark.xdist_group("make run")  # one worker: the launcher starts once
def test_a_service_killed_under_make_run_comes_back_on_its_port_and_the_rest_stays_up(launcher):
    plans = launcher.service("plans")
    others = [p for p in psutil.Process(launcher.proc.pid).children() if p.pid != plans.pid]
    assert len(others) == 5 and {"postgres", "tansu"} <= {p.name() for p in others}, \
        "postgres, the broker, booking, notifier and the console"
    plans.kill()  # kill -9
    plans.wait(10)
    url = launcher.peers()["plans"]
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "plans did not come back"
        time.sleep(0.5)
    assert launcher.service("plans").pid != plans.pid
    assert [p for p in others if not p.is_running() or p.status() == psutil.STATUS_ZOMBIE] == []
    log = (launcher.data_dir / "launcher.log").read_text()
    assert "plans exited with code -9; restarting it in 1 s" in log
    assert "plans restarted" in log
    for name in ("booking", "notifier"):
        assert httpx.get(f"{launcher.peers()[name]}/ready", timeout=5).status_code == 200


@pytest.mark.xdist_group("make run")  # one worker: the launcher starts once
def test_make_run_writes_the_admin_token_to_the_data_directory(launcher):
    token = (launcher.data_dir / "admin-token").read_text()
    assert oct((launcher.data_dir / "admin-token").stat().st_mode & 0o777) == "0o600"
    booking = launcher.peers()["booking"]
    created = httpx.post(f"{booking}/clinics", headers={"X-Admin-Token": token},
                         json={"name": "Token Test Clinic", "phone": "+1 604 555 0100"}, timeout=10)
    assert created.status_code == 201, created.text
    refused = httpx.post(f"{booking}/clinics", headers={"X-Admin-Token": "wrong"},
                         json={"name": "Token Test Clinic", "phone": "+1 604 555 0100"}, timeout=10)
    assert refused.status_code in (401, 403)


@pytest.mark.xdist_group("make run")  # one worker: the launcher starts once
def test_kcb_ops_finds_the_services_make_run_started_on_other_ports(launcher):
    assert all(not url.endswith((":8001", ":8002", ":8003")) for url in launcher.peers().values())
    env = {k: v for k, v in os.environ.items() if k not in ("OPS_PEERS", "OPS_TOKEN")}
    env["DEVSTACK_DATA_DIR"] = str(launcher.data_dir)
    done = subprocess.run([sys.executable, "-m", "opsctl", "status", "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    overview = json.loads(done.stdout)
    assert set(overview["services"]) == {"booking", "plans", "notifier"}
    for name, status in overview["services"].items():
        assert status["ready"]["postgres"] == "ok", (name, status)
