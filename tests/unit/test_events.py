"""The event contract: envelope, typed payloads, forward compatibility, upcasting."""

from __future__ import annotations

import json
import re
from typing import ClassVar
from uuid import UUID, uuid4

import pytest
from pydantic import ValidationError

from shared.consumer import _describe
from shared.events import Envelope, UnknownEvent, event_types, parse_envelope, register_upcaster
from shared.events.base import Event
from shared.events.booking import ApiKeyIssued, SessionBooked
from shared.topics import ALL_TOPICS, dlq
from tests.helpers import session_booked


def test_an_event_survives_the_wire_unchanged():
    env = session_booked()
    back = parse_envelope(env.to_bytes())
    assert back == env
    assert isinstance(back.payload, SessionBooked)
    assert back.key == str(env.patient_id).encode()
    assert back.topic == "booking.events"


def test_events_are_frozen_and_named_in_the_past_tense():
    env = session_booked()
    with pytest.raises(ValidationError):
        env.payload.is_dosing = False  # type: ignore[misc]
    # a past participle among the name's words; a few keep the names the product uses for a
    # state found at a moment (a FHIR status, a due or missing item)
    participle = re.compile(r"[A-Z][a-z]*(ed|Sent|Taken)(?=[A-Z]|$)")
    states = {"PatientNoShow", "PlanSessionDue", "PlanAdherenceGap", "IntegrationSessionMissing",
              "RemsMonitoringFormDue", "RemsMonitoringFormOverdue"}
    for name in set(event_types()) - states:
        assert participle.search(name), name


def test_consumers_ignore_fields_they_do_not_know():
    data = json.loads(session_booked().to_bytes())
    data["new_envelope_field"] = 1
    data["payload"]["new_payload_field"] = "x"
    env = parse_envelope(json.dumps(data))
    assert isinstance(env.payload, SessionBooked)


def test_an_unknown_event_type_is_kept_as_data_not_rejected():
    data = json.loads(session_booked().to_bytes())
    data["event_type"] = "SomethingNewHappened"
    env = parse_envelope(json.dumps(data))
    assert isinstance(env.payload, UnknownEvent)


@pytest.fixture
def registry_restored():
    """The event registry as it was: a test's own event types do not leak into the docs."""
    from shared.events import base

    types, upcasters = dict(base._REGISTRY), dict(base._UPCASTERS)
    yield
    base._REGISTRY.clear(), base._REGISTRY.update(types)
    base._UPCASTERS.clear(), base._UPCASTERS.update(upcasters)


def test_an_old_schema_version_is_upcast_on_parsing(registry_restored):
    class WidgetCounted(Event):
        topic: ClassVar[str] = "plans.events"
        schema_version: ClassVar[int] = 2
        count: int

    @register_upcaster("WidgetCounted", 1)
    def _v1_to_v2(payload):
        return {"count": int(payload["n"])}

    raw = json.loads(session_booked().to_bytes())
    raw.update(event_type="WidgetCounted", schema_version=1, payload={"n": "7"})
    env = parse_envelope(json.dumps(raw))
    assert env.payload == WidgetCounted(count=7)


def test_a_naive_timestamp_or_a_missing_id_is_rejected_without_echoing_values():
    data = json.loads(session_booked().to_bytes())
    data["occurred_at"] = "2026-01-01T10:00:00"
    data["payload"]["site_name"] = None
    with pytest.raises(ValidationError) as err:
        parse_envelope(json.dumps(data))
    text = _describe(err.value)
    assert "occurred_at" in text and "payload.site_name" in text
    assert "2026-01-01" not in text


def test_every_topic_has_a_dead_letter_topic():
    assert set(ALL_TOPICS) == {"booking.events", "plans.events", "notifier.events",
                               "booking.events.dlq", "plans.events.dlq", "notifier.events.dlq"}
    assert dlq("plans.events") == "plans.events.dlq"


def test_a_caused_event_carries_the_correlation_of_its_cause():
    cause = session_booked()
    effect = Envelope.new(cause.payload, producer="plans", clinic_id=cause.clinic_id,
                          patient_id=cause.patient_id, cause=cause)
    assert effect.correlation_id == cause.correlation_id == cause.event_id
    assert effect.causation_id == cause.event_id


def test_an_envelope_typed_with_its_event_parses_that_event_and_refuses_another():
    raw = session_booked().to_bytes()
    typed = Envelope[SessionBooked].model_validate_json(raw)
    assert isinstance(typed, Envelope) and isinstance(typed.payload, SessionBooked)
    assert typed.to_bytes() == raw == parse_envelope(raw).to_bytes()
    other = Envelope.new(ApiKeyIssued(key_id=uuid4(), key_hash="h", role="admin", label="Desk"),
                         producer="booking", clinic_id=uuid4(), patient_id=None)
    with pytest.raises(ValidationError) as refused:
        Envelope[SessionBooked].model_validate_json(other.to_bytes())
    assert [e["loc"] for e in refused.value.errors()] == [("payload",)]


def test_a_bare_envelope_holds_whatever_event_its_type_names():
    booked = session_booked()
    assert type(booked.payload) is SessionBooked
    assert type(parse_envelope(booked.to_bytes()).payload) is SessionBooked
    assert type(Envelope.model_construct(payload=booked.payload).payload) is SessionBooked


def test_a_v1_code_request_loses_its_plain_code_when_read():
    from shared.events.booking import OnlineCodeRequested

    raw = json.loads(session_booked().to_bytes())
    raw.update(event_type="OnlineCodeRequested", schema_version=1, payload={
        "request_id": "7d0c6a4e-1f0b-4a53-9d7c-0f6e2b1a9c11", "phone_e164": "+16045550188",
        "code": "042917", "language": "en", "clinic_name": "Harbour Clinics",
        "expires_at": "2026-12-02T05:10:00+00:00"})
    env = parse_envelope(json.dumps(raw))
    assert isinstance(env.payload, OnlineCodeRequested)
    assert env.payload.sealed_code == "" and "042917" not in env.payload.model_dump_json()


def _rejection(data: object) -> str:
    """Why the consumer would dead-letter these bytes (its `invalid event: ...` text)."""
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    with pytest.raises(ValidationError) as err:
        parse_envelope(raw)
    return _describe(err.value)


def test_rejections_name_the_fields_at_fault_as_they_always_have():
    good = json.loads(session_booked().to_bytes())
    assert _rejection({**good, "payload": {**good["payload"], "is_dosing": "maybe"}}) == (
        "payload.is_dosing: bool_parsing")
    assert _rejection({**good, "payload": {**good["payload"], "mode": "drive-in"}}) == (
        "payload.mode: literal_error")
    assert _rejection({**good, "schema_version": 0}) == (
        "schema_version: greater_than_equal; payload: value_error")
    assert _rejection({**good, "payload": ["not", "an", "object"]}) == "payload: value_error"
    assert _rejection({**good, "event_type": "PatientRegistered"}) == (
        "payload.phone_e164: missing; payload.sms_consent: missing")
    assert _rejection({k: v for k, v in good.items() if k != "event_type"}) == (
        "event_type: missing; payload: value_error")
    assert _rejection({**good, "clinic_id": "nope"}) == "clinic_id: uuid_parsing"
    assert _rejection(b'{"event_type":"SessionBooked",') == "<root>: json_invalid"


def test_an_event_type_inside_the_payload_does_not_decide_how_the_event_is_read():
    booked = session_booked()
    data = json.loads(booked.to_bytes())
    payload = {"event_type": "ApiKeyRevoked", **data.pop("payload")}
    raw = json.dumps({"payload": payload, **data}, separators=(",", ":")).encode()
    assert raw.index(b'"event_type":"ApiKeyRevoked"') < raw.index(b'"event_type":"SessionBooked"')
    env = parse_envelope(raw)
    assert type(env.payload) is SessionBooked and env == booked


def test_a_newer_version_of_a_known_event_keeps_the_fields_this_code_knows():
    data = json.loads(session_booked().to_bytes())
    data.update(schema_version=7)
    data["payload"]["added_in_v7"] = True
    env = parse_envelope(json.dumps(data, separators=(",", ":")).encode())
    assert env.schema_version == 7 and type(env.payload) is SessionBooked
    assert "added_in_v7" not in env.payload.model_dump()


def test_a_parsed_event_is_an_envelope_like_any_other():
    booked = session_booked(patient_id=UUID("7f7f6d00-4244-4c1b-b197-fc2b97cf322e"))
    spaced = json.dumps(json.loads(booked.to_bytes()))  # text, with spaces after : and ,
    for raw in (booked.to_bytes(), spaced):
        env = parse_envelope(raw)
        assert type(env) is Envelope and env == booked and hash(env) == hash(booked)
        assert env.model_fields_set == set(Envelope.model_fields)
        assert env.patient == UUID("7f7f6d00-4244-4c1b-b197-fc2b97cf322e")
        assert env.topic == "booking.events" and env.to_bytes() == booked.to_bytes()
        with pytest.raises(ValidationError):
            env.producer = "someone else"  # type: ignore[misc]
