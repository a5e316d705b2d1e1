"""Phone numbers as people type them, checked and stored in E.164.

A number is one number: any digit form (ASCII, full-width, Arabic-Indic, Eastern
Arabic-Indic) and any punctuation give the same E.164 string, and a number with an extension
("+1 604 555 0142;ext=1", "x12", "ext. 3") is refused: an extension cannot be texted, and
the same line would count as several numbers. The US includes its territories with NANP
numbers: Puerto Rico, the US Virgin Islands, Guam, American Samoa and the Northern Mariana
Islands (+1 787/939, 340, 671, 684, 670)."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneNumberType

US_TERRITORIES = ("PR", "VI", "GU", "AS", "MP")
MOBILE_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})
"""What a patient's or ride contact's mobile may be (NANP mostly cannot tell mobile from
fixed line; toll-free, premium-rate, shared-cost, personal (5XX) numbers are refused)."""
CALLER_PAYS_MORE = frozenset({PhoneNumberType.PREMIUM_RATE, PhoneNumberType.SHARED_COST})
"""What a clinic's contact number may not be: patients are told to call it."""


def with_territories(regions: tuple[str, ...]) -> tuple[str, ...]:
    """`regions` with the US territories added when the US is one of them."""
    return regions + tuple(t for t in US_TERRITORIES if t not in regions) if "US" in regions \
        else regions


def _parse(raw: str, regions: tuple[str, ...], what: str) -> phonenumbers.PhoneNumber:
    """The valid number of one of `regions` that `raw` is, with no extension; else ValueError."""
    regions = with_territories(regions)
    try:
        number = phonenumbers.parse(raw, regions[0])
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number) or \
            phonenumbers.region_code_for_number(number) not in regions:
        raise ValueError(f"is not a valid {what} of the US (territories included) or Canada")
    if number.extension:
        raise ValueError(f"has an extension: give the {what} alone")
    return number


def _e164(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mobile_e164(raw: str, regions: tuple[str, ...] = ("US", "CA")) -> str:
    """The mobile number `raw` in E.164, else ValueError saying why (never repeating it)."""
    number = _parse(raw, regions, "mobile number")
    if phonenumbers.number_type(number) not in MOBILE_TYPES:
        raise ValueError("is not a mobile number (toll-free, premium-rate and other "
                         "non-geographic numbers cannot be texted)")
    return _e164(number)


def contact_e164(raw: str) -> str:
    """A clinic's or site's phone number in E.164 (toll-free is fine), else ValueError."""
    number = _parse(raw, ("US", "CA"), "phone number")
    if phonenumbers.number_type(number) in CALLER_PAYS_MORE:
        raise ValueError("is a premium-rate number: patients are told to call it")
    return _e164(number)


@lru_cache(maxsize=1024)
def readable(stored: str) -> str:
    """A stored (E.164) North American number as people read it in a text: "(604) 555-0101";
    anything that does not parse as one (older rows) as it is."""
    try:
        number = phonenumbers.parse(stored, None)
    except phonenumbers.NumberParseException:
        return stored
    if number.country_code != 1 or not phonenumbers.is_valid_number(number):
        return stored
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
