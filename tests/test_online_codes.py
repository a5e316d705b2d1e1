"""The verification code of the public booking page on its way to the visitor, through the
real broker and the Twilio-compatible test server: sealed in the event (never in plain text
in the event log), in plain text only in the SMS, not kept by the notifier; and sent without
holding up the other events the notifier is handling."""

from __future__ import annotations

import asyncio
import json
import re
from uuid import UUID

import pytest
from cryptography.fernet import Fernet

from devstack.fake_twilio import FakeTwilio, Hold
from shared.topics import BOOKING_EVENTS
from tests.conftest import ONLINE_CODE_KEY, eventually
from tests.helpers import create_network, records_on
from tests.test_online_booking import ask


@pytest.fixture
async def twilio():
    fake = FakeTwilio()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
def spine_overrides(twilio) -> dict[str, dict]:
    return {"notifier": {"twilio_account_sid": twilio.account_sid,
                         "twilio_auth_token": twilio.auth_token,
                         "twilio_api_base_url": twilio.url,
                         "twilio_from_number": "+15005550006"}}


def sms_to(twilio: FakeTwilio, number: str) -> list[str]:
    return [r["Body"] for r in twilio.requests if r.get("To") == number]


async def test_the_code_is_sealed_in_the_event_plain_in_the_sms_and_not_kept(spine, twilio, db, infra):
    net = await create_network(spine.booking.http, name="Sealed Clinics")
    asked = await ask(spine.booking.http, net.clinic["slug"], phone="604-555-0191")
    assert asked.status_code == 201, asked.text

    async def texted():
        return sms_to(twilio, "+16045550191")
    [body] = await eventually(texted, timeout=30)
    code = re.fullmatch(r"Sealed Clinics: your code is (\d{6})\. It expires in 10 minutes\. "
                        r"If you did not ask for it, ignore this text\.", body).group(1)

    async def code_events():
        records = await records_on(infra.bootstrap_servers, spine.topic_prefix + BOOKING_EVENTS)
        return [r for r in records if b'"OnlineCodeRequested"' in r]
    [record] = await eventually(code_events, timeout=30)
    assert f'"{code}"'.encode() not in record
    payload = json.loads(record)["payload"]
    assert "code" not in payload and code not in payload.values()
    assert Fernet(ONLINE_CODE_KEY.encode()).decrypt(payload["sealed_code"].encode()) == code.encode()
    outbox = await db.fetch(f"SELECT convert_from(value, 'UTF8') AS p FROM \"{spine.booking.schema}\".outbox")
    assert outbox and all(f'"{code}"' not in r["p"] for r in outbox)

    async def settled():
        row = await db.fetchrow(f'SELECT * FROM "{spine.notifier.schema}".verification_texts')
        return row if row and row["status"] != "sending" else None
    row = dict(await eventually(settled, timeout=30))
    assert (row["status"], row["phone_e164"], row["sealed_code"], row["clinic_name"]) == \
        ("sent", None, None, None)
    assert row["sid"] == twilio.requests[0]["sid"] and code not in row.values()
    assert await db.fetchval(f'SELECT count(*) FROM "{spine.notifier.schema}".recorded_sms') == 0


async def test_a_slow_provider_holds_up_neither_the_notifiers_other_events_nor_other_codes(spine, twilio, db):
    net = await create_network(spine.booking.http, name="Patient Clinics")
    held = Hold(accepted=True)
    twilio.holds.append(held)  # Twilio takes the first code and answers only when released
    assert (await ask(spine.booking.http, net.clinic["slug"], phone="604-555-0192")).status_code == 201
    await asyncio.wait_for(held.reached.wait(), 30)

    # meanwhile: a second code goes, and a new patient's registration is handled
    assert (await ask(spine.booking.http, net.clinic["slug"], phone="604-555-0193")).status_code == 201
    added = await spine.booking.http.post("/patients", headers=net.headers, json={
        "given_name": "Noa", "family_name": "Quick", "phone": "604-555-0194", "language": "en",
        "sms_consent": True, "sms_consent_source": "intake form"})
    assert added.status_code == 201, added.text

    async def second_code_and_contact():
        contact = await db.fetchval(f'SELECT count(*) FROM "{spine.notifier.schema}".contacts '
                                    "WHERE patient_id = $1", UUID(added.json()["id"]))
        return contact == 1 and len(sms_to(twilio, "+16045550193")) == 1
    await eventually(second_code_and_contact, timeout=30)
    first = await db.fetchval(f'SELECT status FROM "{spine.notifier.schema}".verification_texts '
                              "ORDER BY id LIMIT 1")
    assert first == "sending"  # still waiting for Twilio's answer
    held.release.set()

    async def both_sent():
        rows = await db.fetch(f'SELECT status FROM "{spine.notifier.schema}".verification_texts')
        return [r["status"] for r in rows] == ["sent", "sent"]
    await eventually(both_sent, timeout=30)
