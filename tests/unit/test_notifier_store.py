"""Events the notifier writes in SQL take their shape from the pydantic models: the SQL that
builds their JSON is generated from the models' fields (no database)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from services.notifier.store import MARK_SENT, Q, json_object_sql


class Ping(BaseModel):
    text_id: int
    kind: str


def test_the_json_of_an_event_built_in_sql_has_the_models_fields_in_its_order():
    assert json_object_sql(Ping, {"kind": "t.kind", "text_id": "t.id"}) == \
        "json_build_object('text_id', t.id, 'kind', t.kind)"


def test_a_model_field_without_sql_or_sql_for_no_field_is_refused():
    with pytest.raises(ValueError, match=r"no SQL for \['kind'\]"):
        json_object_sql(Ping, {"text_id": "t.id"})
    with pytest.raises(ValueError, match=r"SQL for no field \['segments'\]"):
        json_object_sql(Ping, {"text_id": "t.id", "kind": "t.kind", "segments": "1"})


def test_mark_sent_writes_the_generated_sms_sent_json_in_its_slot():
    assert "json_build_object(/*" in Q.mark_sent
    assert "json_build_object(/*" not in MARK_SENT
    assert ("json_build_object('event_id', event_id, 'event_type', $5::text, "
            "'schema_version', $6::integer, 'occurred_at', now(), 'producer', $7::text, "
            "'clinic_id', clinic_id, 'patient_id', patient_id, 'correlation_id', event_id, "
            "'causation_id', NULL, 'payload', json_build_object('text_id', id, 'kind', kind, "
            "'booking_id', booking_id, 'provider_sid', sid, 'segments', segments))") in MARK_SENT
