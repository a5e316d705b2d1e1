"""`python -m devstack run|demo`: the commands behind `make run` and `make demo`."""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import threading
from datetime import datetime
from urllib.parse import quote

from devstack.demo import (
    book_demo_session,
    book_home_session,
    book_online,
    console_day_sheet,
    listing,
    load_staff,
    online_starts,
    texts_to,
    wait_for,
)
from devstack.stack import Stack
from devstack.supervise import Supervisor
from shared.logs import configure_logging


def run() -> int:
    """Start everything, load the demo network, keep running until Ctrl-C; a service process
    that dies is started again."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):  # Ctrl-C, even where SIGINT was ignored
        signal.signal(sig, lambda *_: stop.set())
    with Stack() as stack:
        network = stack.load_demo_network()
        load_staff(stack.url("booking"), network["api_key"], stack.data_dir / "demo-console.json")
        logging.getLogger("devstack").info(
            "ready: booking %s, plans %s, notifier %s (API docs at /docs); demo network %r with "
            "%d sites and %d patients, API key in %s, admin and ops tokens in %s and %s; the "
            "staff console at %s (demo sign-ins in %s). Ctrl-C stops everything.",
            stack.url("booking"), stack.url("plans"), stack.url("notifier"),
            network["clinic"]["name"], len(network["sites"]), len(network["patients"]),
            stack.data_dir / "demo-api-key", stack.data_dir / "admin-token",
            stack.data_dir / "ops-token", stack.url("console"),
            stack.data_dir / "demo-console.json")
        supervisor = Supervisor(stack)
        try:
            while not stop.wait(0.5):
                supervisor.check()
        except KeyboardInterrupt:
            pass
        logging.getLogger("devstack").info("stopping")
    return 0


def demo() -> int:
    """Book one session and follow it through plans and notifier, then one consultation on
    the public booking page (texts through the local Twilio-compatible server); exit 0 only
    if it all worked."""
    log = logging.getLogger("devstack")
    # quiet hours off, so that the demo shows a sent text at any hour of the day
    with Stack(quiet=True, twilio=True, env={"NOTIFIER_QUIET_HOURS_START": "24",
                                             "NOTIFIER_QUIET_HOURS_END": "0"}) as stack:
        network = stack.load_demo_network()
        booking = book_demo_session(stack.url("booking"), network)
        patient = booking["patient_id"]
        print(f"booked {booking['session_type']} {booking['id']} at {booking['starts_at_local']}"
              f" ({booking['site_timezone']})")
        auth = {"X-API-Key": network["api_key"]}
        texts = wait_for(
            lambda: listing(f"{stack.url('notifier')}/patients/{patient}/texts", auth),
            lambda ts: any(t["booking_id"] == booking["id"] and t["status"] == "sent" for t in ts))
        plans = wait_for(
            lambda: listing(f"{stack.url('plans')}/patients/{patient}/plans", auth),
            lambda ps: any(
                any(s["booking_id"] == booking["id"] for s in p["timeline"]) for p in ps
            ),
        )
        for plan in plans:
            print(f"plan {plan['template']}: {plan['sessions_booked']} booked, {plan['progress']}")
        print("texts for this booking:")
        for t in texts:
            if t["booking_id"] == booking["id"]:
                print(f"  [{t['status']:>7}] {t['kind']:<16} due {t['due_at']}"
                      + (f"\n            {t['body']}" if t["body"] else ""))
        people = load_staff(stack.url("booking"), network["api_key"],
                            stack.data_dir / "demo-console.json")
        sheet = console_day_sheet(stack.url("console"), people["scheduler"], booking)
        print(f"console day sheet of {booking['starts_at_local'][:10]}: {sheet}")

        # a visitor books a consultation on the network's public page
        slug, visitor = network["clinic"]["slug"], "+16045550161"  # fictional: 604-555-0100..0199
        earlier = online_starts(stack.url("booking"), network["api_key"])
        start, when = book_online(stack.url("console"), stack.twilio_server.url, slug, visitor,
                                  earlier)
        print(f"booked online at {stack.url('console')}/book/{slug}: consultation by phone, {when}")
        def consultation() -> dict | None:  # the booking of that time (earlier runs made others)
            found = listing(f"{stack.url('booking')}/bookings?status=booked&from={quote(start)}",
                            auth)
            return next((b for b in (found or {"items": []})["items"] if b["source"] == "online"
                         and datetime.fromisoformat(b["starts_at"])
                         == datetime.fromisoformat(start)), None)
        consult = wait_for(consultation, bool)
        texts = wait_for(lambda: texts_to(stack.twilio_server.url, visitor), lambda t: len(t) >= 2)
        print("texts to the visitor (through the Twilio-compatible server):")
        for body in texts:
            print(f"  {re.sub(r'[0-9]{6}', '######', body)}")
        sheet = console_day_sheet(stack.url("console"), people["scheduler"], consult)
        print(f"console day sheet of {consult['starts_at_local'][:10]}: {sheet}")
        home_session(stack, network)
        log.info("demo passed: booking -> plans -> notifier -> SMS; the console shows the day; "
                 "a consultation booked online; a home session's patient and support person "
                 "were texted")
    return 0


def home_session(stack: Stack, network: dict) -> None:
    """Book an at-home supervised session and wait for its prep text to the patient and
    its text to the support person; print them."""
    home = book_home_session(stack.url("booking"), network)
    print(f"booked {home['session_type']} at home {home['id']} at {home['starts_at_local']}"
          f" (video: {home['join_link']}; support person: {home['support_person']['name']})")
    auth = {"X-API-Key": network["api_key"]}
    texts = wait_for(
        lambda: listing(f"{stack.url('notifier')}/patients/{home['patient_id']}/texts", auth),
        lambda ts: {"prep", "support"} <= {t["kind"] for t in ts if t["booking_id"] == home["id"]
                                           and t["status"] == "sent"})
    print("texts for the home session:")
    for t in texts:
        if t["booking_id"] == home["id"]:
            to = " (to the support person)" if t["kind"] == "support" else ""
            print(f"  [{t['status']:>7}] {t['kind']:<16} due {t['due_at']}{to}"
                  + (f"\n            {t['body']}" if t["body"] else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devstack")
    parser.add_argument("command", choices=["run", "demo"])
    args = parser.parse_args(argv)
    configure_logging("devstack", fmt="text")
    try:
        return {"run": run, "demo": demo}[args.command]()
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a failed demo says why and exits non-zero
        logging.getLogger("devstack").error("%s failed: %s", args.command, exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
