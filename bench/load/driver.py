"""The load: clinic networks set up over the booking API, bookings, then staff actions
(reschedule, cancel, check-in, complete, no-show) and patients' replies (1, 3, STOP) through
the Twilio-compatible server, while the notifier sends texts; then it waits until the
system has settled (every due text handled, every event published and consumed).

Every request goes through the public HTTP APIs, round-robin over a service's instances;
a request that meets a dead instance or a restarting database is retried on the next one
with the same `Idempotency-Key`, so a retry never books twice.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench.load.network import ALL_DAY, Site, Slot, pick_quiet_hours, schedule, sites
from devstack.stack import Stack
from shared.topics import BOOKING_EVENTS

RETRYABLE = {500, 502, 503, 504}
POISON = [b"not an event: load driver poison %d" % i for i in range(3)]


@dataclass
class Options:
    size: int = 10_000
    sites: int = 20
    concurrency: int = 32
    lead: float = 300.0
    """Seconds from the start of the bookings to the first day-of reminder falling due."""
    spread: float = 600.0
    """Seconds over which the first round's day-of reminders fall due."""
    settle_timeout: float = 900.0
    seed: int = 7
    progress: bool = True


@dataclass
class Outcome:
    """What the driver did, for the checks and the figures."""

    accepted_at: dict[str, float] = field(default_factory=dict)  # booking id -> unix time
    counts: Counter = field(default_factory=Counter)
    stop_patients: set[str] = field(default_factory=set)
    ride_confirmers: set[str] = field(default_factory=set)
    """Patients the driver made text "3" (their ride home is arranged)."""
    booking_seconds: float = 0.0
    action_seconds: float = 0.0
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    settled_at: datetime | None = None
    settled: bool = False
    first_due: datetime | None = None  # the first round's day-of reminders fall due from
    last_due: datetime | None = None  # ... to


class Api:
    """A service's instances, called round-robin with retries."""

    def __init__(self, http: httpx.AsyncClient, urls: list[str], patience: float = 240.0):
        self.http = http
        self.urls = itertools.cycle(urls)
        self.patience = patience

    async def call(self, method: str, path: str, key: str | None = None, json=None,
                   headers: dict | None = None) -> httpx.Response:
        hdrs = {"Idempotency-Key": uuid.uuid4().hex, **(headers or {})}
        if key:
            hdrs["X-API-Key"] = key
        deadline = time.monotonic() + self.patience
        while True:
            try:
                r = await self.http.request(method, next(self.urls) + path, json=json, headers=hdrs)
                if r.status_code not in RETRYABLE:
                    return r
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{method} {path}: no instance answered for {self.patience:.0f} s")
            await asyncio.sleep(0.3 + random.random() * 0.5)


async def _bounded(items, fn, concurrency: int, advance=None) -> list:
    sem = asyncio.Semaphore(concurrency)

    async def one(item):
        async with sem:
            result = await fn(item)
            if advance:
                advance()
            return result
    return await asyncio.gather(*(one(i) for i in items))


def _ok(r: httpx.Response) -> dict:
    if r.status_code not in (200, 201):
        raise RuntimeError(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:300]}")
    return r.json()


class Driver:
    def __init__(self, stack: Stack, opts: Options):
        self.stack = stack
        self.opts = opts
        self.rng = random.Random(opts.seed)
        self.out = Outcome()
        self.keys: dict[int, str] = {}
        self.sites: list[Site] = sites(opts.sites)
        self.patients: list[dict] = []
        self.booked: list[tuple[Slot, dict]] = []
        self.before_bookings = lambda: None
        """Called once the set-up is done (the faults start then)."""

    def urls(self, service: str) -> list[str]:
        return [mp.url for mp in self.stack.service_processes(service)]

    async def run(self, progress: Progress) -> Outcome:
        limits = httpx.Limits(max_connections=self.opts.concurrency * 2)
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:
            self.booking = Api(http, self.urls("booking"))
            self.notifier = Api(http, self.urls("notifier"))
            self.twilio = Api(http, [self.stack.twilio_server.url])
            t0 = datetime.now(UTC)
            slots, rooms, n_patients = schedule(
                self.sites, self.opts.size, t0, lead=timedelta(seconds=self.opts.lead),
                spread=timedelta(seconds=self.opts.spread), rng=self.rng)
            await self.set_up(rooms, n_patients, progress)
            await self.publish_poison()
            self.before_bookings()
            await self.book(slots, progress)
            await self.act(progress)
            self.out.first_due = t0 + timedelta(seconds=self.opts.lead)
            self.out.last_due = self.out.first_due + timedelta(seconds=self.opts.spread)
        return self.out

    # --- set-up ---------------------------------------------------------------------------

    async def set_up(self, rooms: int, n_patients: int, progress: Progress) -> None:
        task = progress.add_task("set-up: networks, sites, rooms, providers, patients",
                                 total=len(self.sites) * (1 + rooms) + n_patients + 2)
        advance = lambda: progress.advance(task)  # noqa: E731
        for n in range(2):
            r = _ok(await self.booking.call("POST", "/clinics", json={
                "name": f"Load Network {n + 1}", "phone": f"+1 604 555 01{n:02d}"},
                headers={"X-Admin-Token": self.stack.admin_token}))
            self.keys[n] = r["api_key"]

        async def add_site(site: Site):
            r = _ok(await self.booking.call("POST", "/sites", self.keys[site.network], json={
                "name": f"Site {site.index + 1}", "address": f"{site.index + 1} Main St",
                "phone": f"+1 {site.area} 555 0100", "timezone": site.timezone, "hours": ALL_DAY}))
            site.id = r["id"]
        await _bounded(self.sites, add_site, self.opts.concurrency, advance)

        async def add_room(item):
            site, i = item
            r = _ok(await self.booking.call("POST", "/rooms", self.keys[site.network],
                                            json={"site_id": site.id, "name": f"Room {i + 1}"}))
            p = _ok(await self.booking.call("POST", "/providers", self.keys[site.network], json={
                "name": f"Provider {i + 1}", "hours": [{**h, "site_id": site.id} for h in ALL_DAY]}))
            site.rooms.append(r["id"])
            site.providers.append(p["id"])
        await _bounded([(s, i) for s in self.sites for i in range(rooms)], add_room,
                       self.opts.concurrency, advance)
        for site in self.sites:  # rooms and providers were added concurrently: pair them up
            site.rooms.sort()
            site.providers.sort()
        self.patients = [None] * n_patients  # type: ignore[list-item]
        self._patient_site: dict[int, Site] = {}

        async def add_patient(k: int):
            site = self._patient_site[k]
            language = self.rng.choices(["en", "fr", "es"], [70, 15, 15])[0]
            self.patients[k] = _ok(await self.booking.call("POST", "/patients", self.keys[site.network], json={
                "given_name": f"Load{k}", "family_name": "Patient", "phone": f"+1{site.area}555{1000 + k:04d}",
                "language": language, "sms_consent": True, "sms_consent_source": "load driver"}))
        rooms_per_site = rooms
        for k in range(n_patients):
            self._patient_site[k] = self.sites[k // rooms_per_site]
        await _bounded(range(n_patients), add_patient, self.opts.concurrency, advance)
        await self.set_policies(progress, task)

    async def set_policies(self, progress: Progress, task) -> None:
        """Network 1 keeps quiet hours that hold no site back during the run; network 2's
        hold about half of its sites back, so both sides of the rule are exercised."""
        horizon = timedelta(seconds=self.opts.lead + self.opts.spread + 1800)
        now = datetime.now(UTC)
        self.quiet = {}
        for n, key in self.keys.items():
            zones = [s.timezone for s in self.sites if s.network == n]
            q = pick_quiet_hours(zones, now, horizon, quiet_share=0.0 if n == 0 else 0.5)
            self.quiet[n] = q
            # caps high enough for the load's patients (five sessions each, booked at once):
            # a capped follow-up is the policy working, not a lost text
            body = {"quiet_hours_start": q.start, "quiet_hours_end": q.end, "daily_cap": 20,
                    "weekly_cap": 50}
            deadline = time.monotonic() + 120
            while True:  # the key reaches the notifier as an event
                r = await self.notifier.call("POST", "/policy", key, json=body)
                if r.status_code == 200 or time.monotonic() > deadline:
                    _ok(r)
                    break
                await asyncio.sleep(0.5)
            progress.advance(task)

    async def publish_poison(self) -> None:
        """A few messages that are not events, on the booking topic: each consumer must
        dead-letter them and go on."""
        producer = AIOKafkaProducer(bootstrap_servers=self.stack.env["KAFKA_BOOTSTRAP_SERVERS"])
        await producer.start()
        try:
            prefix = self.stack.env.get("KAFKA_TOPIC_PREFIX", "")
            for value in POISON:
                await producer.send_and_wait(prefix + BOOKING_EVENTS, value, key=b"poison")
        finally:
            await producer.stop()

    # --- bookings -------------------------------------------------------------------------

    async def book(self, slots: list[Slot], progress: Progress) -> None:
        task = progress.add_task("bookings", total=len(slots))
        started = time.monotonic()

        async def one(slot: Slot):
            site = slot.site
            if slot.no_show:  # starting shortly, so that it can be missed during the run
                slot.starts_at = datetime.now(UTC) + timedelta(seconds=30 + self.rng.random() * 10)
            patient = self.patients[slot.patient]
            r = await self.booking.call("POST", "/bookings", self.keys[site.network], json={
                "patient_id": patient["id"], "site_id": site.id, "session_type": slot.session_type,
                "starts_at": slot.starts_at.isoformat(), "room_id": site.rooms[slot.room],
                "provider_id": site.providers[slot.room]})
            if r.status_code == 201:
                b = r.json()
                self.out.accepted_at[b["id"]] = time.time()
                self.booked.append((slot, b))
                self.out.counts["booked"] += 1
            else:
                self.out.counts[f"booking refused ({r.status_code})"] += 1
        await _bounded(slots, one, self.opts.concurrency, lambda: progress.advance(task))
        self.out.booking_seconds = time.monotonic() - started

    # --- staff actions and replies ------------------------------------------------------------

    async def act(self, progress: Progress) -> None:
        regular = [(s, b) for s, b in self.booked if not s.no_show]
        self.rng.shuffle(regular)
        n = len(regular)
        cut = [int(n * x) for x in (0.10, 0.18, 0.23, 0.25)]
        plan = ([("reschedule", x) for x in regular[:cut[0]]] + [("cancel", x) for x in regular[cut[0]:cut[1]]]
                + [("complete", x) for x in regular[cut[1]:cut[2]]]
                + [("check-in", x) for x in regular[cut[2]:cut[3]]])
        no_shows = [("no-show", x) for x in self.booked if x[0].no_show]
        patients = [p for p in self.patients if p]
        self.rng.shuffle(patients)
        m = len(patients)
        replies = ([("1", p) for p in patients[: m // 5]] + [("3", p) for p in patients[m // 5: m * 3 // 10]]
                   + [("STOP", p) for p in patients[m * 3 // 10: m * 3 // 10 + max(1, m // 50)]])
        task = progress.add_task("staff actions and replies", total=len(plan) + len(no_shows) + len(replies))
        started = time.monotonic()
        self.rng.shuffle(plan)
        await _bounded(plan, self._action, self.opts.concurrency, lambda: progress.advance(task))
        if no_shows:  # only once those sessions have started
            latest = max(s.starts_at for _, (s, _) in no_shows)
            await asyncio.sleep(max(0.0, (latest - datetime.now(UTC)).total_seconds() + 1))
        await _bounded(no_shows, self._action, self.opts.concurrency, lambda: progress.advance(task))
        inbound = self.stack.env["NOTIFIER_PUBLIC_BASE_URL"].rstrip("/") + "/twilio/inbound"

        async def reply(item):
            body, patient = item
            if body == "STOP":
                self.out.stop_patients.add(patient["id"])
            if body == "3":
                self.out.ride_confirmers.add(patient["id"])
            r = await self.twilio.call("POST", "/_fake/inbound", json={
                "url": inbound, "from": patient["phone_e164"], "body": body})
            ok = r.status_code == 200 and r.json()["status"] < 300
            self.out.counts[f"reply {body} {'acknowledged' if ok else 'NOT acknowledged'}"] += 1
        await _bounded(replies, reply, self.opts.concurrency, lambda: progress.advance(task))
        self.out.action_seconds = time.monotonic() - started

    async def _action(self, item) -> None:
        what, (slot, b) = item
        key = self.keys[slot.site.network]
        path = f"/bookings/{b['id']}"
        if what == "reschedule":
            new = datetime.fromisoformat(b["starts_at"]) + timedelta(minutes=5)
            r = await self.booking.call("POST", f"{path}/reschedule", key, json={"starts_at": new.isoformat()})
        elif what == "cancel":
            r = await self.booking.call("POST", f"{path}/cancel", key, json={"reason": "load test"})
        elif what == "complete":
            r = await self.booking.call("POST", f"{path}/check-in", key)
            if r.status_code == 200:
                r = await self.booking.call("POST", f"{path}/complete", key)
        else:
            r = await self.booking.call("POST", f"{path}/{what}", key)
        self.out.counts[f"{what}{'' if r.status_code == 200 else f' refused ({r.status_code})'}"] += 1


# --- settling ------------------------------------------------------------------------------

BUSY = """
SELECT (SELECT count(*) FROM notifier.texts WHERE status = 'pending' AND (due_at <= now()
          -- a text Twilio refused for a while waits for its next try (backoff, at most 5 min)
          OR attempts > 0 AND due_at <= now() + interval '5 minutes'))
     + (SELECT count(*) FROM notifier.texts WHERE status = 'sending') AS texts,
       (SELECT count(*) FROM booking.outbox WHERE sent_at IS NULL)
     + (SELECT count(*) FROM plans.outbox WHERE sent_at IS NULL)
     + (SELECT count(*) FROM notifier.outbox WHERE sent_at IS NULL) AS unsent,
       (SELECT count(*) FROM booking.outbox o WHERE o.event_type = ANY($1) AND (
            NOT EXISTS (SELECT 1 FROM notifier.processed_events p
                        WHERE p.consumer = 'notifier' AND p.event_id = o.event_id)
         OR NOT EXISTS (SELECT 1 FROM plans.processed_events p
                        WHERE p.consumer = 'plans' AND p.event_id = o.event_id))) AS unconsumed
"""


async def settle(database_url: str, out: Outcome, progress: Progress, timeout: float,
                 until: datetime, faults_done=lambda: True) -> None:
    """Wait until the last planned reminder fell due and nothing is left to do: no due text
    unsent, no text waiting for its next try after a Twilio error, no outbox row
    unpublished, no booking event unconsumed (twice in a row)."""
    from bench.load.collect import STATUS

    task = progress.add_task("settling: texts due, events in flight", total=None)
    deadline = time.monotonic() + timeout
    quiet_polls = 0
    while time.monotonic() < deadline:
        try:
            conn = await asyncpg.connect(database_url, timeout=5)
            try:
                row = await conn.fetchrow(BUSY, list(STATUS))
            finally:
                await conn.close()
        except (TimeoutError, OSError, asyncpg.PostgresError):
            row = None  # PostgreSQL restarting
        left = max(0.0, (until - datetime.now(UTC)).total_seconds())
        if row is not None:
            progress.update(task, description=f"settling: {row['texts']} texts due, {row['unsent']} "
                            f"events unpublished, {row['unconsumed']} unconsumed, last reminders "
                            f"due in {left:.0f} s")
            busy = row["texts"] + row["unsent"] + row["unconsumed"]
            quiet_polls = quiet_polls + 1 if busy == 0 and left == 0 and faults_done() else 0
            if quiet_polls >= 2:
                out.settled = True
                break
        await asyncio.sleep(2)
    out.settled_at = datetime.now(UTC)
    progress.update(task, total=1, completed=1)


def progress_bar(enabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), disable=not enabled, transient=False)
