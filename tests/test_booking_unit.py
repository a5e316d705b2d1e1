"""Booking rules that need no database."""

from __future__ import annotations

import pytest

from services.booking.commands import AddSite
from services.booking.network import normalise_mobile
from shared.errors import Invalid


@pytest.mark.parametrize("raw", ["604-555-0177", "(604) 555-0177", "+1 604 555 0177", "16045550177"])
def test_a_canadian_number_is_stored_in_e164_whatever_its_format(raw):
    assert normalise_mobile(raw) == "+16045550177"


@pytest.mark.parametrize("raw", ["12345", "+44 20 7946 0958", "not a number", "+1 000 000 0000"])
def test_a_number_outside_the_us_and_canada_or_invalid_is_refused(raw):
    with pytest.raises(Invalid) as err:
        normalise_mobile(raw)
    assert raw not in err.value.message


def test_a_site_needs_a_real_iana_time_zone():
    with pytest.raises(ValueError):
        AddSite(name="x", address="y",
                phone="123", timezone="Pacific Standard Time")
