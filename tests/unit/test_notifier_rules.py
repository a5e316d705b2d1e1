"""Whether a picked text may go now, over literal texts (no database): consent, opt-outs,
number problems, appointments over or moved, quiet hours and the day a text's words name,
validity, and the clinics' caps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.notifier.policy import Policy, policy_from
from services.notifier.rules import not_now, over_cap, why_not
from services.notifier.schedule import QuietHours
from services.notifier.store import PolicyRow
from tests.unit.due_texts import CLINIC, NOW, SITE, due_text

DEFAULT = Policy()
NIGHT = datetime(2026, 6, 11, 5, 30, tzinfo=UTC)
"""22:30 in Vancouver, in the default quiet hours (21:00-08:00)."""


@pytest.mark.parametrize("changes,reason", [
    ({}, None),
    ({"number_opted_out": True}, "number opted out"),
    ({"phone_e164": None}, "no contact details for the patient"),
    ({"sms_consent": False}, "patient has not consented to texts"),
    ({"number_problem": "landline"}, "number cannot be texted (landline)"),
    ({"kind": "pickup"}, "no ride contact who agreed to texts"),
    ({"kind": "pickup", "ride_contact_phone": "+16045550123", "sms_consent": False}, None),
    ({"kind": "pickup", "ride_contact_phone": "+16045550123", "number_opted_out": True},
     "number opted out"),
    ({"appointment_status": "cancelled"}, "appointment cancelled"),
    ({"appointment_status": "noshow"}, "appointment noshow"),
    ({"appointment_status": "fulfilled"}, "appointment fulfilled"),
    ({"appointment_status": "arrived"}, None),
    ({"kind": "missed", "appointment_status": "noshow"}, None),
    ({"appointment_version": 2}, "appointment was moved"),
    ({"kind": "ride_reminder", "ride_status": "confirmed"}, "ride already arranged"),
    ({"kind": "prep", "ride_status": "confirmed"}, None),
    ({"kind": "waitlist_offer", "booking_id": None, "offer_status": "taken"}, "slot already taken"),
    ({"kind": "waitlist_offer", "booking_id": None, "offer_status": "open"}, None),
    ({"valid_until": NOW - timedelta(seconds=1)}, "too late to be useful"),
    ({"valid_until": NOW}, None),
])
def test_no_text_goes_without_consent_to_a_stopped_or_refused_number_or_about_a_stale_booking(
        changes, reason):
    assert why_not(due_text(**changes), NOW) == reason


def test_an_appointment_over_cancels_its_text_and_anything_else_skips_it():
    assert not_now(due_text(appointment_status="cancelled"), DEFAULT, NOW) == (
        "cancelled", "appointment cancelled", None)
    assert not_now(due_text(appointment_version=3), DEFAULT, NOW) == (
        "cancelled", "appointment was moved", None)
    assert not_now(due_text(sms_consent=False), DEFAULT, NOW) == (
        "skipped", "patient has not consented to texts", None)
    assert not_now(due_text(), DEFAULT, NOW) is None


def test_a_text_due_in_quiet_hours_is_held_until_they_end_while_still_useful():
    assert not_now(due_text(due_at=NIGHT), DEFAULT, NIGHT) == (
        "pending", "held until quiet hours end", datetime(2026, 6, 11, 15, 0, tzinfo=UTC))
    assert not_now(due_text(due_at=NIGHT, valid_until=datetime(2026, 6, 11, 14, 0, tzinfo=UTC)),
                   DEFAULT, NIGHT) == (
        "skipped", "quiet hours until it is too late to be useful", None)


def test_the_quiet_hours_that_apply_are_the_policys():
    florida_like = Policy(quiet=QuietHours(start=20, end=8))
    at_20_30 = datetime(2026, 6, 11, 3, 30, tzinfo=UTC)  # 20:30 in Vancouver
    assert not_now(due_text(due_at=at_20_30), DEFAULT, at_20_30) is None
    assert not_now(due_text(due_at=at_20_30), florida_like, at_20_30) == (
        "pending", "held until quiet hours end", datetime(2026, 6, 11, 15, 0, tzinfo=UTC))


def test_a_text_about_no_site_is_not_held():
    assert not_now(due_text(site_timezone=None, due_at=NIGHT), DEFAULT, NIGHT) is None


def test_a_text_that_says_today_is_skipped_rather_than_sent_after_its_moment():
    # an 08:15 appointment: "see you today" is due at 06:15, in quiet hours; 08:00 is past
    # its validity (07:45)
    starts = datetime(2026, 6, 13, 15, 15, tzinfo=UTC)
    due = starts - timedelta(hours=2)
    text = due_text(kind="day_of", starts_at=starts, due_at=due,
                    valid_until=starts - timedelta(minutes=30))
    assert not_now(text, DEFAULT, due) == (
        "skipped", "quiet hours until it is too late to be useful", None)


def test_a_text_counting_days_from_when_it_is_read_never_moves_to_the_next_day():
    text = due_text(kind="follow_up_due", booking_id=None, due_at=NIGHT)
    assert not_now(text, DEFAULT, NIGHT) == (
        "skipped", "quiet hours until the day it names is over", None)


def test_a_text_that_says_tomorrow_waits_for_the_day_before_the_appointment():
    never_quiet = Policy(quiet=QuietHours(start=24, end=0))
    text = due_text(kind="fasting_reminder", valid_until=datetime(2026, 6, 13, 7, 0, tzinfo=UTC))
    assert not_now(text, never_quiet, NOW) == (
        "pending", "held until the day it names", datetime(2026, 6, 12, 7, 0, tzinfo=UTC))


@pytest.mark.parametrize("changes,policy,sent_now,reason", [
    ({"kind": "missed"}, DEFAULT, 0, None),
    ({"kind": "missed"}, DEFAULT, 1, "cap reached (1 today, 1 in 7 days)"),
    ({"kind": "missed", "sent_today": 1, "sent_week": 2}, DEFAULT, 0,
     "cap reached (1 today, 2 in 7 days)"),
    ({"kind": "missed", "sent_week": 3}, DEFAULT, 0, "cap reached (0 today, 3 in 7 days)"),
    ({"kind": "missed", "sent_week": 2}, DEFAULT, 0, None),
    ({"kind": "missed", "sent_today": 1, "sent_week": 1}, Policy(daily_cap=2), 0, None),
    ({"sent_today": 5, "sent_week": 9}, DEFAULT, 0, None),
    ({"sent_today": 1, "sent_week": 1}, Policy(critical_past_caps=False), 0,
     "cap reached (1 today, 1 in 7 days)"),
    ({"kind": "pickup", "sent_today": 5, "sent_week": 9}, Policy(critical_past_caps=False), 0,
     None),
    ({"kind": "missed", "site_timezone": None, "sent_today": 5}, DEFAULT, 0, None),
])
def test_caps_count_todays_and_this_weeks_texts_and_critical_ones_may_pass_them(
        changes, policy, sent_now, reason):
    assert over_cap(due_text(**changes), policy, sent_now) == reason


def test_a_policy_is_the_networks_columns_with_the_sites_quiet_hours_or_the_default():
    default = QuietHours(start=22, end=7)
    none = PolicyRow(CLINIC, SITE, "CA-BC", None, None, None, None, None, None)
    assert policy_from(none, default) == Policy(quiet=QuietHours(22, 7))
    own = PolicyRow(CLINIC, SITE, "CA-BC", 2, 5, False, ["missed"], 20, 9)
    assert policy_from(own, default) == Policy(QuietHours(20, 9), 2, 5, False,
                                               frozenset({"missed"}))
    assert not policy_from(own, default).allows("missed")
    assert policy_from(own, default).allows("confirmation")


def test_quiet_hours_apply_in_the_recipients_time_zone():
    # 22:30 in Vancouver is 01:30 in Toronto; 07:30 in Vancouver is 10:30 in Toronto
    toronto = due_text(due_at=NIGHT, recipient_timezone="America/Toronto")
    assert not_now(toronto, DEFAULT, NIGHT) == (
        "pending", "held until quiet hours end", datetime(2026, 6, 11, 12, 0, tzinfo=UTC))
    morning = datetime(2026, 6, 11, 14, 30, tzinfo=UTC)
    assert not_now(due_text(due_at=morning), DEFAULT, morning) is not None  # Vancouver: 07:30
    assert not_now(due_text(due_at=morning, recipient_timezone="America/Toronto"), DEFAULT,
                   morning) is None


@pytest.mark.parametrize("changes,reason", [
    ({"kind": "support"}, "no support person who agreed to texts"),
    ({"kind": "support", "ride_contact_phone": "+16045550188", "sms_consent": False}, None),
    ({"kind": "support", "ride_contact_phone": "+16045550188", "number_opted_out": True},
     "number opted out"),
])
def test_the_support_persons_text_goes_to_them_if_they_agreed(changes, reason):
    assert why_not(due_text(**changes), NOW) == reason
