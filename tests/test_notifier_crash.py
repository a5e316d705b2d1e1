"""kill -9 of the notifier on each side of the Twilio call: before Twilio took the text it
is sent once after the restart; after Twilio took it but before its SID was stored, its
status callback (which names the text) records it as sent, so it goes out once; only with
no callback at all (the one documented window) does it go out twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from devstack.embedded import free_port
from devstack.fake_twilio import FakeTwilio, Hold
from devstack.stack import ROOT
from tests.conftest import eventually


class NotifierProcess:
    def __init__(self, infra, namespace, twilio: FakeTwilio):
        self.port = free_port()
        self.env = {**os.environ, "DATABASE_URL": infra.database_url,
                    "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap_servers,
                    "KAFKA_TOPIC_PREFIX": f"{namespace}.", "NOTIFIER_DB_SCHEMA": f"{namespace}_notifier",
                    "NOTIFIER_HTTP_PORT": str(self.port), "NOTIFIER_TWILIO_ACCOUNT_SID": twilio.account_sid,
                    "NOTIFIER_TWILIO_AUTH_TOKEN": twilio.auth_token,
                    "NOTIFIER_TWILIO_API_BASE_URL": twilio.url,
                    "NOTIFIER_TWILIO_FROM_NUMBER": "+15005550006", "NOTIFIER_STALE_CLAIM_SECONDS": "1",
                    "NOTIFIER_CALLBACK_GRACE_SECONDS": "1",
                    "NOTIFIER_QUIET_HOURS_START": "24", "NOTIFIER_QUIET_HOURS_END": "0",
                    "NOTIFIER_DISPATCH_POLL_SECONDS": "0.2", "KAFKA_SESSION_TIMEOUT_MS": "2000",
                    "KAFKA_HEARTBEAT_INTERVAL_MS": "300", "LOG_LEVEL": "WARNING"}
        self.proc: subprocess.Popen | None = None

    async def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "services.notifier"], cwd=ROOT,
                                     env=self.env, stdin=subprocess.DEVNULL)

        async def ready():
            try:
                async with httpx.AsyncClient() as http:
                    return (await http.get(f"http://127.0.0.1:{self.port}/ready")).status_code == 200
            except httpx.HTTPError:
                return False
        await eventually(ready, timeout=60)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
async def crashable(infra, namespace, db):
    twilio = FakeTwilio()
    await twilio.start()
    notifier = NotifierProcess(infra, namespace, twilio)
    try:
        yield notifier, twilio, f'"{namespace}_notifier"'
    finally:
        notifier.stop()
        await twilio.stop()


async def schedule_text(db, schema: str) -> int:
    """A patient, an appointment and its confirmation text, due now."""
    patient, clinic, booking = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    start = datetime.now(UTC) + timedelta(days=3)
    await db.execute(f"INSERT INTO {schema}.contacts (patient_id, clinic_id, phone_e164, sms_consent)"
                     " VALUES ($1, $2, '+16045550177', true)", patient, clinic)
    await db.execute(
        f"INSERT INTO {schema}.appointments (booking_id, clinic_id, patient_id, version,"
        " schedule_version, clinic_name, clinic_phone, site_name, site_address, site_phone,"
        " site_timezone, session_type, is_dosing, starts_at, ends_at)"
        " VALUES ($1, $2, $3, 1, 1, 'C', '+1 604 555 0100', 'S', 'A', '1',"
        " 'America/Vancouver', 'assessment', false, $4, $5)",
        booking, clinic, patient, start, start + timedelta(hours=1))
    return await db.fetchval(
        f"INSERT INTO {schema}.texts (clinic_id, patient_id, booking_id, booking_version, kind, due_at,"
        " valid_until) VALUES ($1, $2, $3, 1, 'confirmation', now(), $4) RETURNING id",
        clinic, patient, booking, start)


@pytest.mark.parametrize("accepted, expected_sends", [(False, 1), (True, 2)])
async def test_a_killed_dispatcher_resends_only_what_twilio_may_not_have_taken(
        crashable, db, accepted, expected_sends):
    notifier, twilio, schema = crashable
    text_id = await kill_mid_call(notifier, twilio, db, schema, accepted)
    await notifier.start()

    async def sent():
        return await db.fetchval(f"SELECT status = 'sent' FROM {schema}.texts WHERE id = $1", text_id)
    await eventually(sent, timeout=30)
    await asyncio.sleep(1.5)  # more than the stale-claim time: nothing else goes out
    assert len(twilio.sent()) == expected_sends
    row = await db.fetchrow(f"SELECT provider_sid, attempts FROM {schema}.texts WHERE id = $1", text_id)
    assert row["provider_sid"] == twilio.sent()[-1]["sid"] and row["attempts"] == 2


async def test_a_text_twilio_took_just_before_a_kill_is_recorded_from_its_receipt_not_resent(
        crashable, db):
    notifier, twilio, schema = crashable
    twilio.auto_callbacks = True  # signed receipts to the callback URL, retried until answered
    notifier.env.update(NOTIFIER_PUBLIC_BASE_URL=f"http://127.0.0.1:{notifier.port}",
                        NOTIFIER_STALE_CLAIM_SECONDS="60", NOTIFIER_CALLBACK_GRACE_SECONDS="60")
    text_id = await kill_mid_call(notifier, twilio, db, schema, accepted=True)
    await notifier.start()

    async def delivered():
        return await db.fetchrow(f"SELECT * FROM {schema}.texts WHERE id = $1"
                                 " AND delivery_status = 'delivered'", text_id)
    row = await eventually(delivered, timeout=60)
    [request] = twilio.sent()
    assert (row["status"], row["provider_sid"], row["attempts"]) == ("sent", request["sid"], 1)
    assert row["status_reason"] == "recorded from its delivery receipt"
    assert row["body"] == request["Body"]
    events = await db.fetch(f"SELECT event_type FROM {schema}.outbox WHERE event_type LIKE 'Sms%'")
    assert sorted(e["event_type"] for e in events) == ["SmsDelivered", "SmsSent"]


async def kill_mid_call(notifier, twilio, db, schema: str, accepted: bool) -> int:
    """Start the notifier, schedule a text, kill -9 the notifier while Twilio holds its
    request; Twilio then takes the text (`accepted`) or not. Returns the text's id."""
    hold = Hold(accepted=accepted)
    twilio.holds.append(hold)
    await notifier.start()
    text_id = await schedule_text(db, schema)
    await asyncio.wait_for(hold.reached.wait(), 30)  # the request is at Twilio
    notifier.kill()                                   # kill -9 mid-call
    await asyncio.sleep(0.5)                          # the server sees the connection drop
    hold.release.set()
    status = await db.fetchval(f"SELECT status FROM {schema}.texts WHERE id = $1", text_id)
    assert status == "sending", "claimed, never recorded as sent"
    return text_id
