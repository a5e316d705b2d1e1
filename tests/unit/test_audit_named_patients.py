"""The patient a refused or not-found change's body names (shared.audit.patients_named_by):
the top-level `patient_id` only, and nothing from a body that is not a JSON object."""

from __future__ import annotations

from uuid import UUID

from shared.audit import patients_named_by

PATIENT = "0b7a6c1e-3f5d-4b8e-9a21-6c4d2e8f1a37"


def test_the_top_level_patient_id_of_a_json_body_is_the_named_patient() -> None:
    body = b'{"site_id": "5f0e2c8a-1b3d-4e6f-8a9b-0c1d2e3f4a5b", "patient_id": "%s"}' % (
        PATIENT.encode())
    assert patients_named_by(body) == [UUID(PATIENT)]


def test_a_body_names_no_patient_when_its_patient_id_is_not_an_id_or_not_at_the_top() -> None:
    assert patients_named_by(b'{"patient_id": "Pat Test"}') == []
    assert patients_named_by(b'{"patient_id": 7}') == []
    assert patients_named_by(b'{"given_name": "Pat", "phone": "604-555-0177"}') == []
    assert patients_named_by(b'{"waitlist": {"patient_id": "%s"}}' % PATIENT.encode()) == []
    assert patients_named_by(b'["%s"]' % PATIENT.encode()) == []


def test_a_body_that_is_not_json_or_is_nested_past_the_parser_names_no_patient() -> None:
    assert patients_named_by(b"") == []
    assert patients_named_by(b'{"patient_id": "%s"' % PATIENT.encode()) == []  # cut short
    assert patients_named_by(b"\xff\xfe") == []
    assert patients_named_by(b"[" * 60_000 + b"]" * 60_000) == []
