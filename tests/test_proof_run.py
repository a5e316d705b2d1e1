"""The load driver end to end, small: a few dozen bookings through the whole stack as
processes, with one `kill -9`, a short broker pause, a PostgreSQL restart and Twilio errors;
every check passes and every process it started is gone afterwards."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil

from devstack.stack import ROOT


def test_a_small_proof_run_with_faults_passes_every_check_and_leaves_nothing_running(tmp_path):
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    run = subprocess.run(
        [sys.executable, "-m", "bench.load", "--size", "40", "--instances", "2", "--faults",
         "--kills", "1", "--broker-pause", "3", "--twilio-faults", "5", "--lead", "10",
         "--spread", "10", "--settle-timeout", "120", "--no-progress"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        # a killed dispatcher's claims come back in 45 s rather than 5 min
        env={**os.environ, "NOTIFIER_STALE_CLAIM_SECONDS": "45"})
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "proof PASSED" in run.stdout
    assert "1 kill -9" in run.stdout
    left = {p.pid for p in psutil.Process().children(recursive=True)} - before
    assert not left, "every process the run started was stopped"
