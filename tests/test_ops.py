"""Ops endpoints on a real broker and PostgreSQL: metrics that move when events flow, dead
letters listed, shown without patient data, replayed after the fix or discarded, with every
action recorded; the ops token guarding it all."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from shared.events import Envelope
from shared.events.booking import PatientRegistered, RideContact
from shared.runtime import ServiceRuntime, service_app
from shared.settings import ServiceSettings
from shared.topics import BOOKING_EVENTS
from tests.conftest import eventually

OPS_TOKEN = "test-ops-token"
OPS = {"X-Ops-Token": OPS_TOKEN}


class OpsTestSettings(ServiceSettings):
    service_name = "opstest"


class Service:
    """A small service on the shared runtime whose handler is broken until it is fixed."""

    def __init__(self, infra, namespace: str, **settings):
        self.prefix = f"{namespace}."
        self.settings = OpsTestSettings(
            database_url=infra.database_url, kafka_bootstrap_servers=infra.bootstrap_servers,
            db_schema=f"{namespace}_ops", topic_prefix=self.prefix, outbox_poll_seconds=0.2,
            kafka_session_timeout_ms=2000, kafka_heartbeat_interval_ms=300,
            **{"ops_token": OPS_TOKEN, **settings})
        self.runtime = ServiceRuntime(self.settings, Path(__file__).with_name("no_migrations"))
        self.runtime.consume("opstest", {PatientRegistered: self.handle}, BOOKING_EVENTS)
        self.app = service_app(self.runtime, "ops test")
        self.broken = True
        self.handled: list = []

    async def handle(self, conn, env: Envelope) -> None:
        if self.broken:
            raise RuntimeError("bug in the handler")
        self.handled.append(env.event_id)

    async def __aenter__(self) -> Service:
        await self.runtime.start()
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://ops")
        self.producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap_servers)
        await self.producer.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.producer.stop()
        await self.http.aclose()
        await self.runtime.stop()

    async def publish(self, value: bytes) -> None:
        await self.producer.send_and_wait(self.prefix + BOOKING_EVENTS, value=value, key=b"k")

    async def status(self) -> dict:
        response = await self.http.get("/ops/status", headers=OPS)
        assert response.status_code == 200, response.text
        return response.json()

    async def metric(self, name: str, **labels) -> float:
        text = (await self.http.get("/metrics")).text
        wanted = [f'{k}="{v}"' for k, v in labels.items()]
        total, found = 0.0, False
        for line in text.splitlines():
            m = re.match(rf"^{name}(?:\{{(.*)\}})? (\S+)$", line)
            if m and all(w in (m.group(1) or "") for w in wanted):
                total, found = total + float(m.group(2)), True
        return total if found else float("nan")


def registered() -> Envelope:
    return Envelope.new(PatientRegistered(
        phone_e164="+16045550199", sms_consent=True,
        ride_contact=RideContact(name="Jordan Driver", phone_e164="+16045550142")),
        producer="booking", clinic_id=uuid4(), patient_id=uuid4())


@pytest.fixture
async def service(infra, namespace):
    async with Service(infra, namespace) as svc:
        yield svc


async def pending_letters(service: Service) -> int:
    return (await service.status())["dead_letters"]["pending"]


async def test_a_failed_event_shows_in_the_dlq_replays_after_the_fix_and_the_count_returns_to_zero(service):
    event = registered()
    await service.publish(event.to_bytes())
    await eventually(lambda: _equals(pending_letters(service), 1))
    assert await service.metric("kcb_dead_letters_pending", consumer="opstest") == 1
    status = await service.status()
    assert not status["healthy"] and "dead letters: 1 pending" in status["problems"]

    [letter] = (await service.http.get("/ops/dlq", headers=OPS)).json()["items"]
    assert letter["event_type"] == "PatientRegistered" and letter["event_id"] == str(event.event_id)
    assert letter["error"].startswith("handler failed: RuntimeError")
    shown = (await service.http.get(f"/ops/dlq/{letter['id']}", headers=OPS)).json()
    assert shown["event"]["patient_id"] == str(event.patient_id)
    assert shown["event"]["payload"]["sms_consent"] is True
    for secret in ("6045550199", "Jordan", "6045550142"):
        assert secret not in str(shown), "patient data must be redacted"

    service.broken = False  # the fix is deployed
    replay = await service.http.post(f"/ops/dlq/{letter['id']}/replay", json={"actor": "on-call Sam"},
                                     headers=OPS)
    assert replay.status_code == 200, replay.text
    await eventually(lambda: _true(event.event_id in service.handled))
    assert await pending_letters(service) == 0
    assert await service.metric("kcb_dead_letters_pending", consumer="opstest") != 1
    again = await service.http.post(f"/ops/dlq/{letter['id']}/replay", json={"actor": "on-call Sam"},
                                    headers=OPS)
    assert again.status_code == 409
    shown = (await service.http.get(f"/ops/dlq/{letter['id']}", headers=OPS)).json()
    assert shown["status"] == "replayed" and shown["resolved_by"] == "on-call Sam"
    assert [(a["action"], a["actor"]) for a in shown["actions"]] == [("replayed", "on-call Sam")]


async def test_a_message_that_is_not_an_event_can_be_discarded_with_a_reason(service):
    await service.publish(b"\x00 not an event")
    await eventually(lambda: _equals(pending_letters(service), 1))
    [letter] = (await service.http.get("/ops/dlq", headers=OPS)).json()["items"]
    assert letter["error"].startswith("invalid event") and letter["event_type"] is None
    url = f"/ops/dlq/{letter['id']}/discard"
    assert (await service.http.post(url, json={"actor": "Sam"}, headers=OPS)).status_code == 422
    done = await service.http.post(url, json={"actor": "Sam", "reason": "garbage from a test tool"},
                                   headers=OPS)
    assert done.status_code == 200
    assert await pending_letters(service) == 0
    listed = (await service.http.get("/ops/dlq?status=discarded", headers=OPS)).json()["items"]
    assert [d["id"] for d in listed] == [letter["id"]]
    shown = (await service.http.get(f"/ops/dlq/{letter['id']}", headers=OPS)).json()
    assert shown["actions"][0]["reason"] == "garbage from a test tool"


async def test_replaying_all_pending_letters_replays_each_once(service):
    events = [registered() for _ in range(3)]
    for e in events:
        await service.publish(e.to_bytes())
    await eventually(lambda: _equals(pending_letters(service), 3))
    service.broken = False
    answer = await service.http.post("/ops/dlq/replay", json={"actor": "Sam"}, headers=OPS)
    assert answer.status_code == 202, answer.text
    assert (answer.json()["total"], answer.headers["location"]) == (3, f"/ops/dlq/replay/{answer.json()['id']}")
    await eventually(lambda: _true(sorted(service.handled) == sorted(e.event_id for e in events)))
    assert await pending_letters(service) == 0
    job = (await service.http.get(answer.headers["location"], headers=OPS)).json()
    assert (job["status"], job["replayed"], job["skipped"], job["remaining"]) == ("done", 3, 0, 0)


async def test_metrics_move_when_events_flow(service):
    service.broken = False
    before = await service.metric("kcb_events_consumed_total", consumer="opstest",
                                  event_type="PatientRegistered", outcome="handled")
    event = registered()
    await service.publish(event.to_bytes())
    await service.publish(event.to_bytes())  # redelivered: counted as a duplicate, not handled
    await eventually(lambda: _true(event.event_id in service.handled))

    async def counted() -> bool:
        handled = await service.metric("kcb_events_consumed_total", consumer="opstest",
                                       event_type="PatientRegistered", outcome="handled")
        duplicates = await service.metric("kcb_events_consumed_total", consumer="opstest",
                                          event_type="PatientRegistered", outcome="duplicates")
        return handled == (0 if before != before else before) + 1 and duplicates >= 1

    await eventually(counted)
    assert await service.metric("kcb_consumer_batch_seconds_count", consumer="opstest") >= 1
    group = f"{service.prefix}opstest"
    lag = await eventually(lambda: _lag_zero(service, group))
    assert lag == "zero"
    assert await service.metric("kcb_outbox_backlog") == 0
    assert await service.metric("kcb_http_requests_total", route="/ops/status", status="200") >= 1


async def test_the_ops_endpoints_need_the_ops_token(service, infra, namespace):
    assert (await service.http.get("/ops/status")).status_code == 401
    assert (await service.http.get("/ops/status", headers={"X-Ops-Token": "wrong"})).status_code == 401
    assert (await service.http.get("/metrics")).status_code == 200  # scraped without a token
    async with Service(infra, namespace + "x", ops_token="") as disabled:
        assert (await disabled.http.get("/ops/dlq", headers=OPS)).status_code == 403


async def test_each_response_carries_a_correlation_id(service):
    given = str(uuid4())
    response = await service.http.get("/health", headers={"X-Correlation-ID": given})
    assert response.headers["x-correlation-id"] == given
    fresh = await service.http.get("/health", headers={"X-Correlation-ID": "not-a-uuid"})
    assert fresh.headers["x-correlation-id"] != "not-a-uuid"


async def _lag_zero(service: Service, group: str):
    rows = (await service.status())["lag"]["partitions"]
    mine = [r for r in rows if r["group"] == group]
    return "zero" if mine and sum(r["lag"] for r in mine) == 0 and \
        sum(r["end"] for r in mine) >= 2 else None


async def _settled(service: Service) -> tuple:
    status = await service.status()
    return status["dead_letters"]["pending"], status["lag"]["total"], status["outbox"]["backlog"]


async def _equals(coro, expected) -> bool:
    return (await coro) == expected


async def _true(value: bool) -> bool:
    return value


PROMETHEUS_OWN = frozenset({"up"})
"""Series Prometheus makes itself for each scrape target."""
GRAFANA_INTERVALS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
"""Grafana's built-in interval variables, as a query's time range could set them."""


async def exported_metrics(spine) -> set[str]:
    """Every series name the three services' `/metrics` can carry: each family's name, and a
    histogram's `_bucket`, `_sum` and `_count` (a family with no samples yet still counts)."""
    names = set(PROMETHEUS_OWN)
    for svc in spine.services.values():
        text = (await svc.http.get("/metrics")).text
        for name, kind in re.findall(r"^# TYPE (\w+) (\w+)$", text, re.M):
            names.add(name)
            if kind in ("histogram", "summary"):
                names |= {f"{name}_sum", f"{name}_count"} | ({f"{name}_bucket"} if kind == "histogram" else set())
    return names


def promql_metrics(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (it must parse: raises otherwise)."""
    import promql_parser

    names: set[str] = set()
    promql_parser.walk(promql_parser.parse(expr), lambda node: names.add(node.name)
                       if isinstance(node, promql_parser.VectorSelector) else None)
    return names


@pytest.mark.shared_services  # reads only what the services export
async def test_the_alert_rules_parse_and_use_only_metrics_the_services_export(spine):
    import yaml

    root = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"
    exported = await exported_metrics(spine)
    rules = yaml.safe_load((root / "alerts.yml").read_text())["groups"][0]["rules"]
    assert {"ConsumerLagHigh", "DeadLettersPending", "OutboxStale", "TextsLate"} <= {r["alert"] for r in rules}
    for rule in rules:
        unknown = promql_metrics(rule["expr"]) - exported
        assert not unknown, f"{rule['alert']} uses {unknown}, which no service exports"
    config = yaml.safe_load((root / "prometheus.yml").read_text())
    assert {j["job_name"] for j in config["scrape_configs"]} == {"booking", "plans", "notifier"}


@pytest.mark.shared_services  # reads only what the services export
async def test_every_grafana_panel_parses_and_uses_only_metrics_the_services_export(spine):
    import json

    exported = await exported_metrics(spine)
    dashboards = sorted((Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "dashboards").glob("*.json"))
    assert [d.name for d in dashboards] == ["clinic-backbone.json"]
    panels = [p for d in dashboards for p in json.loads(d.read_text())["panels"] if p["type"] != "row"]
    titles = {p["title"] for p in panels}
    assert {"Bookings per minute", "HTTP latency by route (p99, p50)", "Consumer lag per group",
            "Outbox age", "Texts of the last 24 h by outcome and Twilio code", "Dispatcher lateness",
            "Dead letters pending", "Plan timers overdue", "Sending paused"} <= titles
    used: set[str] = set()
    for panel in panels:
        assert panel["targets"], f"{panel['title']} has no query"
        names: set[str] = set()
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in GRAFANA_INTERVALS.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"{panel['title']}: a dashboard variable no dashboard defines"
            names |= promql_metrics(expr)
        assert names - PROMETHEUS_OWN, f"{panel['title']} reads no metric of the services"
        assert not names - exported, f"{panel['title']} uses {names - exported}, which no service exports"
        used |= names
    assert {"kcb_sending_paused", "kcb_texts_oldest_due_seconds", "kcb_http_request_seconds_bucket",
            "kcb_plan_timers_overdue"} <= used


async def test_ops_samples_keep_the_latest_of_each_period_and_forget_old_ones(db, namespace):
    from shared import ops_history

    schema = f"{namespace}_samples"
    await db.execute(f"CREATE SCHEMA {schema}; SET search_path = {schema}")
    await db.execute((Path(ops_history.__file__).parent / "migrations" / "020_ops_samples.sql").read_text())
    await db.execute("INSERT INTO ops_samples VALUES (now() - interval '4 hours', 9, 9, 9.0, 9)")
    # two samples in the same hour-long period: the second replaces the first; the old one goes
    await db.execute(ops_history.Q.record_sample, 3600.0, 3, 2, 1.5, 5, 7200.0)
    await db.execute(ops_history.Q.record_sample, 3600.0, None, 0, 0.0, 7, 7200.0)
    rows = [dict(r) for r in await db.fetch(ops_history.Q.samples_since, 300)]
    hour = await db.fetchval("SELECT date_trunc('hour', now())")
    assert rows == [{"at": hour, "lag": None, "outbox_backlog": 0, "outbox_oldest_age_seconds": 0.0,
                     "dead_letters": 7}]


async def test_the_history_ends_with_the_figures_the_status_gives_now(service):
    await service.publish(registered().to_bytes())  # the handler is broken: a dead letter
    await eventually(lambda: _equals(pending_letters(service), 1))
    # the letter's copy for the DLQ topic leaves through the outbox a moment later: wait until
    # nothing moves, so the history's last sample and the status read after it agree
    await eventually(lambda: _equals(_settled(service), (1, 0, 0)))
    answer = await service.http.get("/ops/history", headers=OPS)
    assert answer.status_code == 200, answer.text
    history, status = answer.json(), await service.status()
    assert (history["service"], history["step_seconds"], history["series"]) == ("opstest", 30.0, {})
    assert len(history["samples"]) >= 2  # the sample taken when the service started, and now
    now = history["samples"][-1]
    assert (now["dead_letters"], now["lag"], now["outbox_backlog"]) == (1, 0, 0)
    assert (now["dead_letters"], now["lag"], now["outbox_backlog"]) == (
        status["dead_letters"]["pending"], status["lag"]["total"], status["outbox"]["backlog"])
    assert (await service.http.get("/ops/history")).status_code == 401
    assert (await service.http.get("/ops/history?minutes=121", headers=OPS)).status_code == 422


async def test_the_dashboard_loads_its_charting_library_from_the_service_as_vendored(service):
    import hashlib

    listed = (Path(__file__).resolve().parent.parent / "shared" / "vendor" / "VENDORED.md").read_text()
    page = (await service.http.get("/ops/dashboard")).text
    for name in ("uPlot-1.6.32.iife.min.js", "uPlot-1.6.32.min.css"):
        assert f'/ops/vendor/{name}"' in page
        served = await service.http.get(f"/ops/vendor/{name}")
        assert served.status_code == 200
        digest = hashlib.sha256(served.content).hexdigest()
        assert f"| `{name}` |" in listed and f"| {digest} |" in listed, name
    assert (await service.http.get("/ops/vendor/VENDORED.md")).status_code == 404
    assert not re.search(r'(src|href)="(https?:)?//', page), "no file from elsewhere (no CDN)"


async def test_texts_per_minute_count_sent_failed_and_held_texts_in_the_minute_it_happened(spine):
    from services.notifier.store import OPS as NOTIFIER_OPS

    texts = """INSERT INTO texts (clinic_id, patient_id, kind, due_at, valid_until, status,
                                  status_reason, claimed_at, sent_at)
               SELECT gen_random_uuid(), gen_random_uuid(), 'confirmation', now(),
                      now() + interval '1 day', s, r, c, t
               FROM (VALUES ($1::text, $2::text, $3::timestamptz, $4::timestamptz)) AS v(s, r, c, t)"""
    # one now() throughout: the minutes cannot turn
    async with spine.notifier.runtime.db.acquire() as conn, conn.transaction():
        this = await conn.fetchval("SELECT date_trunc('minute', now())")
        before = this - timedelta(minutes=2) + timedelta(seconds=5)
        for status, reason, claimed, sent in [
                ("sent", None, this, this), ("sent", None, before, before),
                ("failed", "21211", this, None),
                ("skipped", "cap reached (3 today, 3 in 7 days)", this, None),
                ("pending", "held until quiet hours end", before, None),
                ("pending", None, None, None),  # not due yet: not held
                ("cancelled", "appointment cancelled", this, None),
                ("sent", None, this - timedelta(hours=2), this - timedelta(hours=2))]:
            await conn.execute(texts, status, reason, claimed, sent)
        rows = [dict(r) for r in await conn.fetch(NOTIFIER_OPS.texts_per_minute, 3)]
    assert rows == [
        {"minute": this - timedelta(minutes=2), "sent": 1, "failed": 0, "held": 1},
        {"minute": this - timedelta(minutes=1), "sent": 0, "failed": 0, "held": 0},
        {"minute": this, "sent": 1, "failed": 1, "held": 1}]
