"""`Idempotency-Key` matching (services/booking/rules.py): what makes a request the same, and
what a key used again gets."""

from __future__ import annotations

import pytest

from services.booking.model import StoredResponse
from services.booking.rules import check_key, replay, request_digest
from shared.errors import Invalid

FIRST = StoredResponse(
    request_hash="0398f09f66a3ee0c4b44bc451a102333ced3920b8c15701d779f81301628e49b",
    status_code=201, response='{"id":"b1"}')


def test_a_request_is_known_by_its_method_path_and_body():
    assert request_digest("POST", "/bookings", b'{"a":1}') == FIRST.request_hash
    assert request_digest("POST", "/bookings", b'{"a":2}') != FIRST.request_hash
    assert request_digest("POST", "/waitlist", b'{"a":1}') != FIRST.request_hash


def test_the_same_request_again_gets_the_first_answer():
    assert replay(FIRST, request_digest("POST", "/bookings", b'{"a":1}')) is FIRST


def test_a_key_used_again_for_another_request_is_a_422_on_the_header():
    with pytest.raises(Invalid) as refused:
        replay(FIRST, request_digest("POST", "/bookings", b'{"a":2}'))
    assert refused.value.message == "this Idempotency-Key was used for a different request"
    assert refused.value.details == {"field": "Idempotency-Key"}


def test_a_key_of_more_than_200_characters_is_refused():
    check_key("k" * 200)
    with pytest.raises(Invalid) as refused:
        check_key("k" * 201)
    assert refused.value.message == "Idempotency-Key is longer than 200 characters"
