"""Texts through the real twilio SDK, against a local Twilio-compatible server: sending,
Twilio's errors, signed delivery receipts and patients' replies."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from itertools import pairwise
from uuid import UUID
from zoneinfo import ZoneInfo

import httpx
import pytest
import uvicorn
from twilio.request_validator import RequestValidator

from devstack.embedded import free_port
from devstack.fake_twilio import FakeTwilio, Fault
from services.notifier.bootstrap import bootstrap as notifier_app
from shared.events import parse_envelope
from shared.ops_status import StatusReport
from tests.conftest import RunningService, eventually, service_settings, start_service, stop_service
from tests.helpers import create_network


class TwilioStack:
    def __init__(self, booking: RunningService, notifier, twilio: FakeTwilio, url: str):
        self.booking, self.notifier, self.twilio, self.url = booking, notifier, twilio, url

    @property
    def db(self):
        return self.notifier.state.runtime.db

    async def events(self, *types) -> list:
        rows = await self.db.fetch("SELECT value FROM outbox WHERE event_id IS NOT NULL ORDER BY id")
        return [e for e in (parse_envelope(r["value"]) for r in rows) if e.event_type in types]

    async def book(self, net, days: int = 5, session_type: str = "iv_infusion") -> dict:
        start = (datetime.now(ZoneInfo("America/Vancouver")) + timedelta(days=days)).replace(
            hour=10, minute=0, second=0, microsecond=0)
        r = await self.booking.http.post("/bookings", headers=net.headers, json={
            "patient_id": net.patient["id"], "site_id": net.site["id"],
            "session_type": session_type, "starts_at": start.isoformat()})
        assert r.status_code == 201, r.text
        return r.json()

    async def texts(self, net) -> list[dict]:
        async with httpx.AsyncClient() as http:
            r = await http.get(f"{self.url}/patients/{net.patient['id']}/texts", headers=net.headers)
        return r.json() if r.status_code == 200 else []


@pytest.fixture
async def stack(infra, namespace):
    twilio = FakeTwilio()
    await twilio.start()
    port = free_port()
    settings = service_settings(
        "notifier", infra, namespace, twilio_account_sid=twilio.account_sid,
        twilio_auth_token=twilio.auth_token, twilio_api_base_url=twilio.url,
        twilio_from_number="+15005550006", public_base_url=f"http://127.0.0.1:{port}",
        dispatch_poll_seconds=0.2)
    app = notifier_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           lifespan="on"))
    serving = asyncio.create_task(server.serve())
    booking = await start_service("booking", service_settings("booking", infra, namespace))
    try:
        await eventually(lambda: _true(server.started), timeout=60)
        yield TwilioStack(booking, app, twilio, f"http://127.0.0.1:{port}")
    finally:
        await stop_service(booking)
        server.should_exit = True
        await serving
        await twilio.stop()


async def _true(value):
    return value


async def sent_kinds(stack, net, n: int):
    texts = await stack.texts(net)
    sent = [t for t in texts if t["status"] == "sent"]
    return len(sent) >= n and texts


async def test_texts_go_through_the_twilio_sdk_and_delivery_receipts_come_back_signed(stack):
    net = await create_network(stack.booking.http)
    await stack.book(net, days=2)  # confirmation and prep are due at once
    texts = await eventually(lambda: sent_kinds(stack, net, 2))
    sent = stack.twilio.sent()
    assert {r["To"] for r in sent} == {"+16045550177"}
    assert all(r["From"] == "+15005550006" for r in sent)
    by_sid = {t["provider_sid"]: t for t in texts if t["provider_sid"]}
    assert {r["StatusCallback"] for r in sent} == {  # each names its text
        f"{stack.url}/twilio/status?text={t['id']}" for t in by_sid.values()}
    assert set(by_sid) == {r["sid"] for r in sent}
    assert {r["Body"] for r in sent} == {t["body"] for t in by_sid.values()}

    sid = sent[0]["sid"]
    assert await stack.twilio.callback(sid, "sent") == 204
    assert await stack.twilio.callback(sid, "delivered") == 204
    assert await stack.twilio.callback(sid, "sent") == 204, "a late 'sent' arrives after 'delivered'"
    assert await stack.twilio.callback(sid, "delivered") == 204, "and a repeat"
    assert await stack.twilio.callback(sid, "failed", forged=True) == 403
    row = await stack.db.fetchrow("SELECT delivery_status FROM texts WHERE provider_sid = $1", sid)
    assert row["delivery_status"] == "delivered"
    assert len(await stack.events("SmsDelivered")) == 1


async def test_twilio_errors_are_retried_or_marked_permanent(stack):
    stack.twilio.fail_next(Fault(429, 20429), Fault(500))
    net = await create_network(stack.booking.http)
    await stack.book(net, session_type="assessment")
    texts = await eventually(lambda: sent_kinds(stack, net, 1), timeout=40)
    assert [r.get("refused") for r in stack.twilio.requests[:2]] == [20429, 500]
    confirmation = next(t for t in texts if t["kind"] == "confirmation")
    assert confirmation["status"] == "sent"

    other = await create_network(stack.booking.http, name="Other")
    stack.twilio.fail_next(Fault(400, 21211))
    await stack.book(other, session_type="assessment")

    async def failed():
        texts = await stack.texts(other)
        return [t for t in texts if t["status"] == "failed"]

    [failure] = await eventually(failed)
    assert failure["status_reason"] == "21211"
    problem = await stack.db.fetchval("SELECT number_problem FROM contacts WHERE patient_id = $1",
                                      UUID(other.patient["id"]))
    assert "invalid number" in problem
    refused = [r for r in stack.twilio.requests if r.get("refused") == 21211]
    assert len(refused) == 1, "a permanent error is not retried"
    assert any(e.payload.permanent for e in await stack.events("SmsFailed"))
    async with httpx.AsyncClient() as http:
        attention = (await http.get(f"{stack.url}/attention", headers=other.headers)).json()
    assert [n["patient_id"] for n in attention["failing_numbers"]] == [other.patient["id"]]


async def test_patients_replies_become_events_and_strangers_are_not_matched(stack):
    net = await create_network(stack.booking.http)
    booking = await stack.book(net)
    await eventually(lambda: sent_kinds(stack, net, 1))
    inbound = f"{stack.url}/twilio/inbound"
    assert await stack.twilio.inbound(inbound, "+16045550177", "1", sid="SMreply1") == 200
    assert await stack.twilio.inbound(inbound, "+16045550177", "1", sid="SMreply1") == 200  # retry
    assert await stack.twilio.inbound(inbound, "+16045550177", " 3 ") == 200
    assert await stack.twilio.inbound(inbound, "+16045550199", "1") == 200  # a stranger
    assert await stack.twilio.inbound(inbound, "+16045550177", "stop") == 200
    assert await stack.twilio.inbound(inbound, "+16045550177", "STOP", forged=True) == 403
    confirmed = await stack.events("PatientConfirmed")
    assert [str(e.payload.booking_id) for e in confirmed] == [booking["id"]]
    assert len(await stack.events("RideConfirmed")) == 1
    assert len(await stack.events("PatientOptedOut")) == 1
    rows = await stack.db.fetch("SELECT from_e164, patient_id, interpretation, note"
                                " FROM inbound_messages ORDER BY id")
    assert [(r["interpretation"], r["note"]) for r in rows] == [
        ("confirm", None), ("ride", None), ("confirm", "unknown number"), ("opt_out", None)]
    assert rows[2]["patient_id"] is None
    assert await stack.db.fetchval("SELECT phone_e164 FROM number_opt_outs") == "+16045550177"
    assert await stack.twilio.inbound(inbound, "+16045550177", "START") == 200
    assert await stack.db.fetchval("SELECT count(*) FROM number_opt_outs") == 0
    assert len(await stack.events("PatientOptedIn")) == 1
    assert await stack.twilio.inbound(inbound, "+16045550177", "Can I bring my dog?") == 200
    params = {"MessageSid": "SMhelp", "From": "+16045550177", "Body": "HELP",
              "AccountSid": stack.twilio.account_sid}
    signature = RequestValidator(
        stack.twilio.auth_token).compute_signature(inbound, params)
    async with httpx.AsyncClient() as http:
        help_reply = await http.post(inbound, data=params, headers={"X-Twilio-Signature": signature})
    assert "<Message>Test Clinic: appointment texts. For help call (604) 555-0101." \
        in help_reply.text  # the site's number, as the texts give it (E.164, as stored)
    async with httpx.AsyncClient() as http:
        attention = (await http.get(f"{stack.url}/attention", headers=net.headers)).json()
    assert [r["body"] for r in attention["replies"]] == ["HELP", "Can I bring my dog?"]


async def test_sending_is_paced_to_the_senders_rate(infra, namespace):
    from services.notifier.senders import OutgoingSms
    from services.notifier.settings import NotifierSettings
    from services.notifier.templates import segments
    from services.notifier.twilio_sender import TwilioSender

    twilio = FakeTwilio()
    await twilio.start()
    sender = TwilioSender(NotifierSettings(
        twilio_account_sid=twilio.account_sid, twilio_auth_token=twilio.auth_token,
        twilio_api_base_url=twilio.url, twilio_from_number="+15005550006",
        twilio_segments_per_second=10))
    try:
        async def send(text_id: int, body: str) -> None:
            await sender.turn(segments(body))
            await sender.send(OutgoingSms(text_id, "+16045550177", body))

        await asyncio.gather(*(send(i, "short text") for i in range(12)))
        await send(99, "x" * 200)  # two segments
        await send(100, "after the long one")
    finally:
        await sender.close()
        await twilio.stop()
    times = [r["received_at"] for r in twilio.sent()]
    gaps = [b - a for a, b in pairwise(times)]
    assert len(times) == 14
    # arrival times carry each request's own latency (the first also opens the connection,
    # which a loaded machine saw take 10 ms more): a tenth of a second of slack; a burst would span ~0 s
    assert times[11] - times[0] >= 11 * 0.1 - 0.1, "no faster than 10 segments per second"
    assert min(gaps[:12]) >= 0.05, "spaced out, not in bursts"
    assert times[13] - times[12] >= 0.2 * 0.8, "a two-segment text counts twice"


async def test_a_waiting_patient_takes_a_freed_slot_by_replying_4(stack):
    from tests.helpers import add_patient

    net = await create_network(stack.booking.http)
    waiting = await add_patient(stack.booking.http, net, given_name="Wait", phone="604-555-0188")
    slot = await stack.book(net, days=6)
    start = datetime.fromisoformat(slot["starts_at"])
    r = await stack.booking.http.post("/waitlist", headers=net.headers, json={
        "patient_id": waiting["id"], "site_id": net.site["id"], "session_type": "iv_infusion",
        "window_start": (start - timedelta(days=2)).isoformat(),
        "window_end": (start + timedelta(days=2)).isoformat()})
    assert r.status_code == 201
    await stack.booking.http.post(f"/bookings/{slot['id']}/cancel", headers=net.headers,
                                  json={"reason": "patient moved away"})

    async def offer_sent():
        return [m for m in stack.twilio.sent() if m["To"] == "+16045550188" and "Reply 4" in m["Body"]]
    [offer] = await eventually(offer_sent)
    assert "Test Clinic" in offer["Body"] and "10:00 AM" in offer["Body"]
    assert await stack.twilio.inbound(f"{stack.url}/twilio/inbound", "+16045550188", "4") == 200

    async def booked_for_waiting_patient():
        items = (await stack.booking.http.get("/bookings", headers=net.headers, params={
            "patient_id": waiting["id"]})).json()["items"]
        return [b for b in items if b["status"] == "booked"]
    [taken] = await eventually(booked_for_waiting_patient)
    assert taken["starts_at"] == slot["starts_at"]


async def _a_sent_text(stack) -> str:
    """The provider SID of a text that went out."""
    net = await create_network(stack.booking.http)
    await stack.book(net, days=2)
    await eventually(lambda: sent_kinds(stack, net, 2))
    return stack.twilio.sent()[0]["sid"]


async def _arm_failover(stack, *, every_time: bool,
                        on: str = "UPDATE OF delivery_status ON texts") -> None:
    """A trigger (`on` a table of the notifier's) that ends its own PostgreSQL session, as a
    restart or a failover does mid-statement: on the first row only, or on every one."""
    schema = stack.notifier.state.runtime.settings.db_schema
    once = "" if every_time else "IF nextval('test_failover') = 1 THEN "
    end = "" if every_time else " END IF;"
    event, _, table = on.rpartition(" ON ")
    await stack.db.execute(f"""
        CREATE SEQUENCE "{schema}".test_failover;
        CREATE FUNCTION "{schema}".test_failover() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN {once}PERFORM pg_terminate_backend(pg_backend_pid());{end} RETURN NEW; END $$;
        CREATE TRIGGER test_failover BEFORE {event} ON "{schema}".{table}
            FOR EACH ROW EXECUTE FUNCTION "{schema}".test_failover();""")


async def _end_failover(stack, table: str = "texts") -> None:
    """The database is back: the trigger is gone."""
    schema = stack.notifier.state.runtime.settings.db_schema
    await stack.db.execute(f'DROP TRIGGER test_failover ON "{schema}".{table}')


async def _signed_receipt(stack, sid: str, status: str) -> httpx.Response:
    """Twilio's status callback for the first text sent, as Twilio signs it."""
    url = f"{stack.url}/twilio/status?text={stack.twilio.sent()[0]['StatusCallback'].split('=')[-1]}"
    params = {"MessageSid": sid, "MessageStatus": status, "AccountSid": stack.twilio.account_sid}
    signature = RequestValidator(stack.twilio.auth_token).compute_signature(url, params)
    async with httpx.AsyncClient() as http:
        return await http.post(url, data=params, headers={"X-Twilio-Signature": signature})


async def test_a_delivery_receipt_that_meets_a_database_failover_is_applied_when_it_passes(stack):
    sid = await _a_sent_text(stack)
    await _arm_failover(stack, every_time=False)
    # Twilio does not send a receipt twice: the request itself rides out the lost session
    assert await stack.twilio.callback(sid, "delivered") == 204
    row = await stack.db.fetchrow("SELECT delivery_status FROM texts WHERE provider_sid = $1", sid)
    assert row["delivery_status"] == "delivered"
    assert await stack.db.fetchval("SELECT last_value FROM test_failover") == 2  # tried twice
    assert len(await stack.events("SmsDelivered")) == 1


async def test_a_delivery_receipt_gets_503_with_retry_after_when_the_database_stays_down(stack):
    sid = await _a_sent_text(stack)
    await _arm_failover(stack, every_time=True)
    stack.notifier.state.runtime.settings.webhook_db_retry_seconds = 0.5
    answer = await _signed_receipt(stack, sid, "delivered")
    assert (answer.status_code, answer.headers.get("Retry-After")) == (503, "5")
    assert answer.json() == {"error": "unavailable",
                             "message": "the service's database cannot take the request just now; "
                                        "try again shortly"}
    row = await stack.db.fetchrow("SELECT delivery_status FROM texts WHERE provider_sid = $1", sid)
    assert row["delivery_status"] != "delivered"
    assert await stack.events("SmsDelivered") == []


async def test_a_receipt_answered_503_is_applied_once_the_database_is_back(stack):
    sid = await _a_sent_text(stack)
    await _arm_failover(stack, every_time=True)
    stack.notifier.state.runtime.settings.webhook_db_retry_seconds = 0.5
    assert (await _signed_receipt(stack, sid, "delivered")).status_code == 503
    held = stack.notifier.state.held_webhooks
    assert held.waiting() == {"receipt": 1}
    report = StatusReport("notifier")
    await held.probe()(None, report)
    assert report.sections["webhooks_held"] == {
        "waiting": {"receipt": 1, "inbound": 0}, "applied": {"receipt": 0, "inbound": 0},
        "dropped": {"receipt": 0, "inbound": 0}}
    assert report.problems == ["1 Twilio webhooks wait for the database (held in this process)"]

    await _end_failover(stack)

    async def applied():
        return await stack.db.fetchval(
            "SELECT delivery_status FROM texts WHERE provider_sid = $1", sid) == "delivered"
    await eventually(applied)
    assert len(await stack.events("SmsDelivered")) == 1
    assert (held.waiting(), held.applied["receipt"]) == ({}, 1)
    # Twilio retrying the same receipt later changes nothing
    assert (await _signed_receipt(stack, sid, "delivered")).status_code == 204
    assert len(await stack.events("SmsDelivered")) == 1


async def test_an_opt_out_texted_while_the_database_is_out_is_recorded_once_it_is_back(stack):
    await _a_sent_text(stack)
    patient = stack.twilio.sent()[0]["To"]
    await _arm_failover(stack, every_time=True, on="INSERT ON inbound_messages")
    stack.notifier.state.runtime.settings.webhook_db_retry_seconds = 0.5
    inbound = f"{stack.url}/twilio/inbound"
    assert await stack.twilio.inbound(inbound, patient, "please stop texting me") == 503
    assert await stack.db.fetchval("SELECT count(*) FROM number_opt_outs") == 0

    await _end_failover(stack, "inbound_messages")

    async def opted_out():
        return await stack.db.fetchval("SELECT phone_e164 FROM number_opt_outs") == patient
    await eventually(opted_out)
    assert len(await stack.events("PatientOptedOut")) == 1
    assert [r["interpretation"] for r in await stack.db.fetch(
        "SELECT interpretation FROM inbound_messages")] == ["opt_out"]
