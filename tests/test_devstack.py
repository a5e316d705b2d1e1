"""`make run` leaves nothing behind: Ctrl-C stops every process it started, and so does the
death of the launcher itself."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from shared.embedded import free_port
from devstack.stack import ROOT


def start_launcher(tmp_path) -> tuple[subprocess.Popen, list[psutil.Process]]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")}
    env.update({"DEVSTACK_DATA_DIR": str(tmp_path), "BOOKING_HTTP_PORT": str(free_port()),
                "PLANS_HTTP_PORT": str(free_port()), "NOTIFIER_HTTP_PORT": str(free_port())})
    log = open(tmp_path / "launcher.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "devstack", "run"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    deadline = time.monotonic() + 120
    while b"Ctrl-C stops everything" not in (tmp_path / "launcher.log").read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("launcher did not start:\n" + (tmp_path / "launcher.log").read_text()[-3000:])
        time.sleep(0.2)
    children = psutil.Process(proc.pid).children(recursive=True)
    assert len(children) >= 5, "postgres, the broker and three services"
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
