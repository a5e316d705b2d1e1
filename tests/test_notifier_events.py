"""The `SmsSent` events the dispatcher writes to the outbox in SQL (`mark_sent`, one
statement with the texts it records) read exactly as the events the Python model makes:
same fields, same values, same topic and key (real PostgreSQL)."""

from __future__ import annotations

import json

from services.notifier.dispatcher import Dispatcher
from shared.events import Envelope, parse_envelope
from shared.events.notifier import SmsSent
from tests.test_notifier_claims import ANY_HOUR, InstantSender, book, pool  # noqa: F401


async def test_the_sms_sent_rows_written_in_sql_read_as_the_python_model_makes_them(pool):
    booked = await book(pool)
    sender = InstantSender()
    assert await Dispatcher(pool, sender, quiet=ANY_HOUR).dispatch_once() == 1

    async with pool.acquire() as conn:
        text = await conn.fetchrow("SELECT * FROM texts WHERE status = 'sent'")
        row = await conn.fetchrow("SELECT * FROM outbox WHERE event_type = 'SmsSent'")
    raw = json.loads(row["value"])
    assert set(raw) == set(Envelope.model_fields), "every envelope field, no other"
    assert set(raw["payload"]) == set(SmsSent.model_fields), "every SmsSent field, no other"

    event = parse_envelope(row["value"])
    assert event.payload == SmsSent(text_id=text["id"], kind="confirmation",
                                    booking_id=booking_id(booked), segments=text["segments"],
                                    provider_sid=f"SM{text['id']:032d}")
    assert (event.producer, event.clinic_id, event.patient_id) == (
        "notifier", booked.clinic_id, booked.patient_id)
    assert event.correlation_id == event.event_id and event.causation_id is None
    assert event.occurred_at == text["sent_at"]
    assert (row["topic"], bytes(row["key"]), row["event_id"]) == (
        SmsSent.topic, event.key, event.event_id)
    assert event.schema_version == SmsSent.schema_version


def booking_id(env: Envelope):
    return env.payload.booking_id
