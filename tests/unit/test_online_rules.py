"""The rules of online consultation booking, without a database: slugs, codes (6 digits,
10 minutes, 5 tries, kept as an HMAC), limits and how names match."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from uuid import UUID

import pytest

from services.booking.model import OnlineRequest, Recent
from services.booking.online_rules import (
    Limits,
    check_code,
    check_start,
    code_hash,
    merged_hours,
    name_key,
    new_code,
    over_limit,
    slug_of,
)
from shared.errors import Invalid

NOW = datetime(2026, 12, 2, 18, 0, tzinfo=UTC)
RID = UUID("00000000-0000-0000-0000-0000000000aa")


def request(code: str = "042917", tries: int = 0, expires_at: datetime = NOW + timedelta(minutes=10),
            booked: bool = False) -> OnlineRequest:
    return OnlineRequest(RID, RID, RID, RID, NOW, "phone", "A", "B", "+16045550188", "en",
                         "America/Vancouver", "v", NOW, code_hash(RID, code, "pepper"), tries,
                         expires_at, booked)


def test_a_slug_is_the_name_in_lowercase_ascii_words_joined_by_hyphens():
    assert slug_of("Cédar Grove Clinics") == "cedar-grove-clinics"
    assert slug_of("  St. Thomas & Co!! ") == "st-thomas-co"
    assert slug_of("★★★") == "clinic"
    assert len(slug_of("a" * 80)) == 40


def test_a_code_has_six_digits_and_only_its_hmac_is_kept():
    codes = {new_code() for _ in range(200)}
    assert all(len(c) == 6 and c.isdigit() for c in codes) and len(codes) > 150
    assert code_hash(RID, "042917", "pepper") != code_hash(RID, "042917", "")
    assert "042917" not in code_hash(RID, "042917")
    assert len(code_hash(RID, "042917")) == 64


def test_the_right_code_within_ten_minutes_and_five_tries_is_accepted():
    assert check_code(request(), "042917", NOW, "pepper") == "ok"
    assert check_code(request(), " 042917 ", NOW, "pepper") == "ok"
    assert check_code(request(tries=4), "042917", NOW, "pepper") == "ok"


def test_a_code_is_refused_when_wrong_expired_locked_or_used():
    assert check_code(request(), "042918", NOW, "pepper") == "wrong"
    assert check_code(request(), "042917", NOW, "") == "wrong"  # another pepper
    assert check_code(request(), "042917", NOW + timedelta(minutes=10), "pepper") == "expired"
    assert check_code(request(tries=5), "042917", NOW, "pepper") == "locked"
    assert check_code(request(booked=True), "042917", NOW, "pepper") == "used"


def test_limits_apply_per_number_then_address_then_network():
    limits = Limits(per_number=3, per_address=10, per_network=200)
    assert over_limit(Recent(2, 9, 199), limits) is None
    assert over_limit(Recent(3, 0, 0), limits) == "number"
    assert over_limit(Recent(0, 10, 0), limits) == "address"
    assert over_limit(Recent(0, 0, 200), limits) == "network"


def test_names_match_with_case_accents_and_spaces_folded():
    assert name_key("  Zoé  DE la Cruz ") == name_key("zoe de la cruz") == "zoe de la cruz"
    assert name_key("Zoe") != name_key("Zoey")


def test_overlapping_working_hours_of_several_providers_are_joined():
    spans = [(time(9), time(12)), (time(11), time(14)), (time(14), time(15)), (time(16), time(17))]
    assert merged_hours(spans) == [(time(9), time(15)), (time(16), time(17))]


def test_a_time_that_is_not_free_is_refused_naming_starts_at():
    free = [NOW, NOW + timedelta(minutes=15)]
    check_start(NOW.astimezone(), free)
    with pytest.raises(Invalid) as refused:
        check_start(NOW + timedelta(minutes=5), free)
    assert refused.value.details == {"field": "starts_at"}
