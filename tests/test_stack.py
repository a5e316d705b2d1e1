"""The system as it runs for real: each service its own process, driven over HTTP."""

from __future__ import annotations

import asyncio

from devstack.demo import book_demo_session, listing, wait_for
from devstack.embedded import free_port
from devstack.stack import Stack


def run_stack_demo(infra, namespace, tmp_path) -> tuple[list, list, list]:
    env = {
        "DATABASE_URL": infra.database_url, "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": f"{namespace}.", "KAFKA_SESSION_TIMEOUT_MS": "2000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "300",
        "NOTIFIER_QUIET_HOURS_START": "24", "NOTIFIER_QUIET_HOURS_END": "0",
        **{f"{s.upper()}_DB_SCHEMA": f"{namespace}_{s}" for s in ("booking", "plans", "notifier")},
    }
    ports = {name: free_port() for name in ("booking", "plans", "notifier")}
    stack = Stack(data_dir=tmp_path, ports=ports, env=env, quiet=True)
    with stack:
        procs = [mp.proc for mp in stack.processes]
        assert stack.postgres is None and stack.broker is None, "configured infra is used"
        network = stack.load_demo_network()
        assert stack.load_demo_network()["clinic"]["id"] == network["clinic"]["id"], \
            "loading the demo network twice creates it once"
        booking = book_demo_session(stack.url("booking"), network)
        auth = {"X-API-Key": network["api_key"]}
        texts = wait_for(
            lambda: listing(f"{stack.url('notifier')}/patients/{booking['patient_id']}/texts", auth),
            lambda ts: any(t["status"] == "sent" for t in ts))
        plans = wait_for(
            lambda: listing(f"{stack.url('plans')}/patients/{booking['patient_id']}/plans", auth),
            lambda ps: bool(ps))
    return procs, texts, plans


async def test_the_three_services_as_processes_carry_a_booking_to_the_patients_texts(
        infra, namespace, tmp_path):
    procs, texts, plans = await asyncio.to_thread(run_stack_demo, infra, namespace, tmp_path)
    assert {t["kind"] for t in texts} >= {"confirmation", "day_of"}
    assert plans[0]["sessions_booked"] == 1
    assert all(p.poll() is not None for p in procs), "every service process was stopped"
