"""The SQL the outbox gives services for events written with their state change (no
database here: tests/test_outbox.py runs it)."""

from __future__ import annotations

from uuid import UUID

import pytest

from shared.events import Envelope
from shared.events.notifier import SmsSent
from shared.outbox import COLUMNS, insert_events_sql, insert_row_sql, row

SMS_SENT_FIELDS = {"text_id": "id", "kind": "kind", "booking_id": "booking_id",
                   "provider_sid": "sid", "segments": "segments"}


def test_one_event_made_in_python_is_written_from_its_parameters_once_per_source_row():
    assert insert_row_sql(13, source="booked") == (
        "INSERT INTO outbox (topic, key, value, event_id, event_type, trace_context)\n"
        "SELECT $13::text, $14::bytea, $15::bytea, $16::uuid, $17::text, $18::text\nFROM booked")
    assert insert_row_sql(1) == (
        "INSERT INTO outbox (topic, key, value, event_id, event_type, trace_context)\n"
        "SELECT $1::text, $2::bytea, $3::bytea, $4::uuid, $5::text, $6::text")


def test_the_parameters_of_one_event_are_its_topic_key_bytes_id_type_and_no_trace_while_off():
    clinic, patient = UUID(int=1), UUID(int=2)
    env = Envelope.new(SmsSent(text_id=7, kind="prep", booking_id=None, provider_sid="SM1",
                               segments=1), producer="notifier", clinic_id=clinic,
                       patient_id=patient)
    assert COLUMNS == ("topic", "key", "value", "event_id", "event_type", "trace_context")
    assert row(env) == ("notifier.events", b"00000000-0000-0000-0000-000000000002",
                        env.to_bytes(), env.event_id, "SmsSent", None)


def test_events_built_in_sql_take_every_field_of_their_model_and_of_the_envelope():
    sql = insert_events_sql(SmsSent, source="sent", producer="notifier", event_id="event_id",
                            clinic_id="clinic_id", patient_id="patient_id", order_by="id",
                            payload=SMS_SENT_FIELDS)
    assert sql == (
        "INSERT INTO outbox (topic, key, value, event_id, event_type, trace_context)\n"
        "SELECT 'notifier.events', convert_to((coalesce(patient_id, clinic_id))::text, 'UTF8'),\n"
        "       convert_to('{\"event_id\": ' || coalesce('\"' || (event_id)::text || '\"', 'null')"
        " || ', \"event_type\": \"SmsSent\", \"schema_version\": 1, \"occurred_at\": '"
        " || (SELECT to_json(now())::text) || ', \"producer\": \"notifier\", \"clinic_id\": '"
        " || coalesce('\"' || (clinic_id)::text || '\"', 'null') || ', \"patient_id\": '"
        " || coalesce('\"' || (patient_id)::text || '\"', 'null') || ', \"correlation_id\": '"
        " || coalesce('\"' || (event_id)::text || '\"', 'null')"
        " || ', \"causation_id\": null, \"payload\": {\"text_id\": '"
        " || coalesce((id)::text, 'null') || ', \"kind\": ' || coalesce(to_json(kind)::text, 'null')"
        " || ', \"booking_id\": ' || coalesce('\"' || (booking_id)::text || '\"', 'null')"
        " || ', \"provider_sid\": ' || coalesce(to_json(sid)::text, 'null')"
        " || ', \"segments\": ' || coalesce((segments)::text, 'null') || '}}', 'UTF8'),\n"
        "       event_id, 'SmsSent', NULL::text\n"
        "FROM sent ORDER BY id")


def test_a_network_level_event_built_in_sql_is_keyed_by_its_clinic():
    sql = insert_events_sql(SmsSent, source="s", producer="it's", event_id="e",
                            clinic_id="c", patient_id=None, payload=SMS_SENT_FIELDS)
    assert "convert_to((c)::text, 'UTF8')" in sql
    assert '"patient_id": null' in sql
    assert """"producer": "it''s\"""" in sql  # JSON in a quoted literal


@pytest.mark.parametrize("payload, named", [
    ({k: v for k, v in SMS_SENT_FIELDS.items() if k != "segments"}, "missing ['segments']"),
    ({**SMS_SENT_FIELDS, "body": "body"}, "unknown ['body']"),
])
def test_events_built_in_sql_must_say_what_each_field_of_the_model_is(payload, named):
    with pytest.raises(ValueError, match=named.replace("[", r"\[").replace("]", r"\]")):
        insert_events_sql(SmsSent, source="sent", producer="notifier", event_id="event_id",
                          clinic_id="clinic_id", patient_id="patient_id", payload=payload)
