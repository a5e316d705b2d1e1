"""Ops against the system as it runs for real (each service its own process, a broker of its
own): the CLI's status and dead-letter commands, the dashboard in headless Chromium showing
the same numbers as the CLI (its table, and its charts of the last hour ending on them), and
the CLI failing while the broker is paused."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from devstack.demo import book_demo_session
from devstack.embedded import free_port
from devstack.stack import Stack
from shared.topics import BOOKING_EVENTS

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", ROOT / ".test-artifacts"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
FIELDS = ("healthy", "lag", "outbox", "dead_letters", "texts_late", "failing_numbers", "timers_overdue")
CHARTS = ("texts", "lag", "outbox_age", "dead_letters")
TEXT_SERIES = ("sent", "failed", "held")
# Each chart's drawn series (uPlot's, as window.opsCharts holds them): its canvas, the time
# of its last point, each series' last value and the sum of its values.
READ_CHARTS = """
const out = {};
for (const [name, u] of Object.entries(window.opsCharts || {})) {
  const canvas = u.root.querySelector("canvas");
  const series = {};
  u.series.slice(1).forEach((s, i) => {
    const ys = u.data[i + 1].filter(y => y !== null && y !== undefined);
    series[s.label] = {last: ys[ys.length - 1], sum: ys.reduce((a, b) => a + b, 0)};
  });
  out[name] = {canvas: canvas ? [canvas.width, canvas.height] : null, series,
               last_x: u.data[0][u.data[0].length - 1]};
}
return out;
"""


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


def expected_chart_points(overview: dict) -> dict[str, dict[str, float]]:
    """The last points the dashboard's charts of lag, outbox age and dead letters must end
    on (one series per service), from the CLI's JSON."""
    services = overview["services"]
    return {"lag": {n: s["lag"]["total"] for n, s in services.items()},
            "outbox_age": {n: s["outbox"]["oldest_age_seconds"] for n, s in services.items()},
            "dead_letters": {n: s["dead_letters"]["pending"] for n, s in services.items()}}


def chart_points(charts: dict) -> dict[str, dict[str, float]]:
    return {name: {label: s["last"] for label, s in charts[name]["series"].items()}
            for name in ("lag", "outbox_age", "dead_letters") if name in charts}


def dashboard_cells(url: str, services: list[str], expected: dict[str, dict[str, str]],
                    expected_charts: dict[str, dict[str, float]], stack: Stack) -> dict:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1100"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=ChromeService(executable_path=CHROMEDRIVER))
    try:
        driver.get(url)

        def read():
            for _ in range(20):  # the dashboard redraws its table on each refresh
                try:
                    return {name: {c.get_attribute("data-field"): c.text for c in driver.find_elements(
                        By.CSS_SELECTOR, f'tr[data-service="{name}"] td[data-field]')}
                        for name in services}
                except StaleElementReferenceException:
                    time.sleep(0.1)
            raise AssertionError("the dashboard's table never held still")

        def charts():
            return driver.execute_script(READ_CHARTS)

        # it refreshes on its own: wait for a rendering with the numbers the CLI saw
        with contextlib.suppress(Exception):  # compared below, with a readable failure
            WebDriverWait(driver, 45, poll_frequency=0.5).until(
                lambda _: all({f: read()[n].get(f) for f in FIELDS} == expected[n] for n in services)
                and chart_points(charts()) == expected_charts)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "dashboard.png"))
        summary = driver.find_element(By.ID, "summary").text
        # texts per minute end on the current minute: compared with what the CLI says of the
        # same minute (read again after the next refresh of the charts if the minute turned)
        for _ in range(3):
            drawn = charts()
            this_minute = status(stack)[1]["services"]["notifier"]["texts"]["this_minute"]
            if drawn["texts"]["last_x"] == datetime.fromisoformat(this_minute["minute"]).timestamp():
                break
            time.sleep(16)
        return {"cells": read(), "summary": summary, "charts": drawn, "this_minute": this_minute}
    finally:
        driver.quit()


def texts_this_hour(stack: Stack) -> int:
    """Texts sent, failed or held in the last hour, from the notifier's history."""
    minutes = httpx.get(f"{stack.url('notifier')}/ops/history", headers={
        "X-Ops-Token": stack.env["OPS_TOKEN"]}, timeout=10).json()["series"]["texts_per_minute"]
    return sum(m[k] for m in minutes for k in TEXT_SERIES)


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
           "NOTIFIER_QUIET_HOURS_START": "24", "NOTIFIER_QUIET_HOURS_END": "0",
           **{f"{s.upper()}_DB_SCHEMA": f"{namespace}_{s}" for s in ("booking", "plans", "notifier")}}
    ports = {name: free_port() for name in ("booking", "plans", "notifier")}
    # a broker of its own, so that pausing it disturbs no other test
    with Stack(data_dir=tmp_path, ports=ports, env=env, quiet=True) as stack:
        code, overview = wait_until(lambda: (lambda r: r if r[0] == 0 else None)(status(stack))) \
            or status(stack)
        assert code == 0, overview["problems"]
        # a booking 5 days ahead: only its confirmation is due now (no quiet hours here)
        network = stack.load_demo_network()
        book_demo_session(stack.url("booking"), network, days_ahead=5)
        assert wait_until(lambda: texts_this_hour(stack) == 1), texts_this_hour(stack)
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

        # the dashboard shows what the CLI shows: in its table, and where its charts end
        expected = {n: expected_cells(s) for n, s in overview["services"].items()}
        expected_charts = expected_chart_points(overview)
        assert expected_charts["dead_letters"] == {"booking": 0, "plans": 1, "notifier": 1}
        seen = dashboard_cells(f"{stack.url('notifier')}/ops/dashboard#token={stack.env['OPS_TOKEN']}",
                               list(expected), expected, expected_charts, stack)
        for name in expected:
            assert {f: seen["cells"][name].get(f) for f in FIELDS} == expected[name], name
        assert seen["summary"] == f"{len(overview['problems'])} problem(s)"
        charts = seen["charts"]
        assert set(charts) == set(CHARTS)
        for name in CHARTS:
            width, height = charts[name]["canvas"]
            assert width >= 300 and height >= 100, (name, charts[name]["canvas"])
        assert chart_points(charts) == expected_charts
        texts = charts["texts"]["series"]
        assert {k: texts[k]["last"] for k in TEXT_SERIES} == {k: seen["this_minute"][k] for k in TEXT_SERIES}
        assert sum(texts[k]["sum"] for k in TEXT_SERIES) == 1  # the booking's confirmation

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


@pytest.mark.xdist_group("chromium")  # takes turns with the other Chromium tests (make test)
async def test_the_cli_and_the_dashboard_show_the_same_health_and_the_cli_fails_while_the_broker_is_paused(
        infra, namespace, tmp_path):
    await asyncio.to_thread(run_ops_scenario, infra, namespace, tmp_path)
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 0
