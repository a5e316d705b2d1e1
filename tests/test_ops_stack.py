"""Ops against the system as it runs for real (each service its own process, a broker of its
own): the CLI's status and dead-letter commands, the dashboard in headless Chromium showing
the same numbers as the CLI, and the CLI failing while the broker is paused."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from devstack.embedded import free_port
from devstack.stack import Stack
from shared.topics import BOOKING_EVENTS

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", ROOT / ".test-artifacts"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
FIELDS = ("healthy", "lag", "outbox", "dead_letters", "texts_late", "failing_numbers", "timers_overdue")


def kcb_ops(stack: Stack, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPS_TOKEN": stack.env["OPS_TOKEN"], "OPS_PEERS": stack.env["OPS_PEERS"],
           "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "opsctl", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def status(stack: Stack) -> tuple[int, dict]:
    done = kcb_ops(stack, "status", "--json")
    return done.returncode, json.loads(done.stdout)


def wait_until(check, timeout: float = 60.0, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


def expected_cells(service: dict) -> dict[str, str]:
    """What the dashboard must show for a service, from the CLI's JSON."""
    def num(v):
        return "-" if v is None else str(v)
    return {"healthy": "yes" if service["healthy"] else "no",
            "lag": num(service["lag"]["total"]), "outbox": num(service["outbox"]["backlog"]),
            "dead_letters": num(service["dead_letters"]["pending"]),
            "texts_late": num(service.get("texts", {}).get("late")),
            "failing_numbers": num(service.get("texts", {}).get("failing_numbers")),
            "timers_overdue": num(service.get("timers", {}).get("overdue"))}


def dashboard_cells(url: str, services: list[str], expected: dict[str, dict[str, str]]) -> dict:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,700"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=ChromeService(executable_path=CHROMEDRIVER))
    try:
        driver.get(url)

        def read():
            cells = {}
            for name in services:
                row = driver.find_elements(By.CSS_SELECTOR, f'tr[data-service="{name}"] td[data-field]')
                cells[name] = {c.get_attribute("data-field"): c.text for c in row}
            return cells

        # it refreshes on its own: wait for a rendering with the numbers the CLI saw
        try:
            WebDriverWait(driver, 30, poll_frequency=0.5).until(
                lambda _: all({f: read()[n].get(f) for f in FIELDS} == expected[n] for n in services))
        except Exception:
            pass  # compared below, with a readable failure
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "dashboard.png"))
        summary = driver.find_element(By.ID, "summary").text
        return {"cells": read(), "summary": summary}
    finally:
        driver.quit()


async def publish_poison(bootstrap: str, prefix: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(prefix + BOOKING_EVENTS, value=b"{not an event", key=b"x")
    finally:
        await producer.stop()


def run_ops_scenario(infra, namespace, tmp_path) -> None:
    env = {"DATABASE_URL": infra.database_url, "KAFKA_TOPIC_PREFIX": f"{namespace}.",
           "BOOKING_HTTP_WORKERS": "2",  # metrics add up across worker processes
           **{f"{s.upper()}_DB_SCHEMA": f"{namespace}_{s}" for s in ("booking", "plans", "notifier")}}
    ports = {name: free_port() for name in ("booking", "plans", "notifier")}
    # a broker of its own, so that pausing it disturbs no other test
    with Stack(data_dir=tmp_path, ports=ports, env=env, quiet=True) as stack:
        code, overview = wait_until(lambda: (lambda r: r if r[0] == 0 else None)(status(stack))) \
            or status(stack)
        assert code == 0, overview["problems"]
        assert set(overview["services"]) == {"booking", "plans", "notifier"}
        metrics = httpx.get(f"{stack.url('booking')}/metrics").text
        served = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                     if line.startswith('kcb_http_requests_total{') and 'route="/ops/status"' in line)
        assert served >= 1, "the workers' request counters are exported"

        # a message no consumer can read: plans and notifier dead-letter it, status fails
        asyncio.run(publish_poison(stack.broker.url, f"{namespace}."))
        code, overview = wait_until(lambda: (lambda r: r if r[1]["services"]["notifier"]["dead_letters"]
                                             ["pending"] and r[1]["services"]["plans"]["dead_letters"]
                                             ["pending"] else None)(status(stack)))
        assert code == 1 and not overview["healthy"]
        assert "plans: dead letters: 1 pending" in overview["problems"]

        # the dashboard shows what the CLI shows
        expected = {n: expected_cells(s) for n, s in overview["services"].items()}
        seen = dashboard_cells(f"{stack.url('notifier')}/ops/dashboard#token={stack.env['OPS_TOKEN']}",
                               list(expected), expected)
        for name in expected:
            assert {f: seen["cells"][name].get(f) for f in FIELDS} == expected[name], name
        assert seen["summary"] == f"{len(overview['problems'])} problem(s)"

        # replay all of the notifier's letters: a job followed to its end; plans sees nothing
        done = kcb_ops(stack, "dlq", "replay", "--all", "--service", "notifier", "--actor", "pytest")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "replayed 1 dead letters" in done.stdout
        jobs = kcb_ops(stack, "dlq", "jobs", "--service", "notifier")
        assert "notifier:1" in jobs.stdout and "done" in jobs.stdout, jobs.stdout
        # still poison: the notifier dead-letters the replayed copy again
        assert wait_until(lambda: status(stack)[1]["services"]["notifier"]["dead_letters"]["pending"] == 1)
        every_plans_letter = kcb_ops(stack, "dlq", "list", "--service", "plans", "--status", "all")
        assert every_plans_letter.stdout.count("plans:") == 1, every_plans_letter.stdout

        # list and discard them with the CLI; then all is healthy again
        listed = kcb_ops(stack, "dlq", "list")
        assert listed.returncode == 0, listed.stdout + listed.stderr
        refs = [word for line in listed.stdout.splitlines() for word in line.split()
                if word.startswith(("plans:", "notifier:")) and word.split(":")[1].isdigit()]
        assert len(refs) == 2, listed.stdout
        shown = kcb_ops(stack, "dlq", "show", refs[0])
        assert shown.returncode == 0 and "invalid event" in shown.stdout
        for ref in refs:
            done = kcb_ops(stack, "dlq", "discard", ref, "--reason", "test poison", "--actor", "pytest")
            assert done.returncode == 0, done.stdout + done.stderr
        assert wait_until(lambda: status(stack)[0] == 0), status(stack)[1]["problems"]
        for command in (("outbox",), ("texts", "pending"), ("texts", "late")):
            done = kcb_ops(stack, *command)
            assert done.returncode == 0, (command, done.stdout + done.stderr)
        assert "waiting" in kcb_ops(stack, "outbox").stdout  # the table, with each service's backlog
        assert kcb_ops(stack, "dlq", "show", "plans:999999").returncode == 2  # unknown: 404

        # the broker paused: the CLI says so with a non-zero exit
        stack.broker.proc.send_signal(signal.SIGSTOP)
        try:
            code, overview = status(stack)
        finally:
            stack.broker.proc.send_signal(signal.SIGCONT)
        assert code == 1
        assert any("kafka" in p or "lag" in p for p in overview["problems"]), overview["problems"]
        assert wait_until(lambda: status(stack)[0] == 0, timeout=90), status(stack)[1]["problems"]


async def test_the_cli_and_the_dashboard_show_the_same_health_and_the_cli_fails_while_the_broker_is_paused(
        infra, namespace, tmp_path):
    await asyncio.to_thread(run_ops_scenario, infra, namespace, tmp_path)
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 0
