"""The proof's checks (bench/load/checks.py) catch what they promise: a lost text, a
duplicate outside the crash window, a text in quiet hours, one quoting a stale time, one to
a cancelled booking, and a plan whose counts disagree with the bookings. Fixed times: these
tests do not depend on the hour they run at."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bench.load.checks import Booking, BookingEvent, Facts, Plan, PlanSession, Send, TextRow, check
from services.notifier.templates import TextContext, render

KNOWN = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)  # 11:00 in New York (EDT)
STARTS = KNOWN + timedelta(hours=2, minutes=10)
TZ = "America/New_York"
PHONE = "+12125551000"


def event(version=1, status="booked", starts=STARTS, known=KNOWN) -> BookingEvent:
    return BookingEvent("b1", version, status, "c1", "p1", TZ, known, known, starts_at=starts,
                        ends_at=starts + timedelta(hours=1))


def body(kind: str, starts=STARTS) -> str:
    return render(kind, TextContext("en", "Clinic", "+1 212 555 0100", "Site", "1 Main St", TZ,
                                    starts, None, starts + timedelta(hours=1)))


def healthy() -> Facts:
    """One assessment booked at 11:00 for 13:10: its confirmation went at once, its day-of
    reminder at 11:10; both accepted once."""
    f = Facts(events={"b1": [event()]}, quiet={"c1": (21, 8)}, phones={"p1": PHONE},
              settled_at=KNOWN + timedelta(hours=1))
    f.texts = [TextRow(1, "p1", "b1", 1, "confirmation", "sent", "SM1", body("confirmation")),
               TextRow(2, "p1", "b1", 1, "day_of", "sent", "SM2", body("day_of"))]
    f.sends = [Send("SM1", PHONE, body("confirmation"), KNOWN + timedelta(seconds=1)),
               Send("SM2", PHONE, body("day_of"), KNOWN + timedelta(minutes=10, seconds=1))]
    f.bookings = {"b1": Booking("b1", "p1", "assessment", "booked", 1)}
    f.plan_sessions = {"b1": PlanSession("b1", None, "booked", 1)}
    return f


def test_a_run_where_every_text_went_once_passes():
    report = check(healthy())
    assert report.ok, dict(report.violations)
    assert report.counts["texts expected"] == 2 and report.counts["expected texts sent"] == 2


def test_a_text_that_never_reached_twilio_is_lost():
    f = healthy()
    f.sends = f.sends[:1]
    report = check(f)
    assert [v.split(":")[0] for v in report.violations["lost"]] == ["day_of for booking b1 v1"]


def test_a_text_never_planned_is_lost_too():
    f = healthy()
    f.texts, f.sends = f.texts[:1], f.sends[:1]
    assert "never planned" in check(f).violations["lost"][0]


def test_a_second_send_of_a_text_is_a_duplicate():
    f = healthy()
    f.sends.append(Send("SM9", PHONE, body("day_of"), KNOWN + timedelta(minutes=12)))
    assert len(check(f).violations["duplicates"]) == 1


def test_a_duplicate_inside_the_documented_crash_window_is_counted_not_failed():
    f = healthy()
    orphan = Send("SM9", PHONE, body("day_of"), KNOWN + timedelta(minutes=10))
    f.sends.insert(1, orphan)
    f.crashes = [orphan.at + timedelta(seconds=1)]  # a notifier died before storing SM9
    report = check(f)
    assert report.ok, dict(report.violations)
    assert report.counts["duplicates in the crash window"] == 1


def test_the_same_text_planned_twice_and_sent_twice_is_a_duplicate():
    f = healthy()
    f.texts.append(TextRow(3, "p1", "b1", 1, "day_of", "sent", "SM3", body("day_of")))
    f.sends.append(Send("SM3", PHONE, body("day_of"), KNOWN + timedelta(minutes=11)))
    assert check(f).violations["duplicates"]


def test_a_text_accepted_in_the_patients_quiet_hours_fails():
    f = healthy()
    late = datetime(2026, 3, 11, 2, 30, tzinfo=UTC)  # 22:30 in New York
    f.sends[1] = Send("SM2", PHONE, body("day_of"), late)
    assert "22:30 in America/New_York" in check(f).violations["quiet hours"][0]


def test_a_text_quoting_the_time_before_a_reschedule_is_stale():
    f = healthy()
    moved = STARTS + timedelta(minutes=5)
    f.events["b1"].append(event(version=2, starts=moved, known=KNOWN + timedelta(minutes=2)))
    f.texts[1] = TextRow(2, "p1", "b1", 1, "day_of", "sent", "SM2", body("day_of"))  # old time
    report = check(f)
    assert report.violations["stale time"], dict(report.violations)


def test_a_text_sent_after_the_notifier_knew_of_the_cancellation_fails():
    f = healthy()
    f.events["b1"].append(event(version=2, status="cancelled", known=KNOWN + timedelta(minutes=1)))
    report = check(f)
    assert [v.split(" ")[1] for v in report.violations["cancelled booking"]] == ["2"]
    assert not report.violations["lost"], "a cancelled booking's texts are not expected"


def test_a_plan_whose_counts_differ_from_the_bookings_fails():
    f = healthy()
    f.bookings["b2"] = Booking("b2", "p1", "iv_infusion", "fulfilled", 3)
    f.bookings["b3"] = Booking("b3", "p1", "iv_infusion", "cancelled", 2)
    f.plan_sessions.update({"b2": PlanSession("b2", "plan1", "completed", 3),
                            "b3": PlanSession("b3", "plan1", "cancelled", 2)})
    f.plans = [Plan("plan1", "iv_infusion", booked=0, completed=1, cancelled=1, missed=0)]
    assert check(f).ok
    f.plans = [Plan("plan1", "iv_infusion", booked=1, completed=1, cancelled=0, missed=0)]
    assert "plan plan1 counts" in check(f).violations["plans"][0]


def test_a_booking_plans_never_heard_of_fails():
    f = healthy()
    f.plan_sessions.clear()
    assert check(f).violations["plans"] == ["booking b1 never reached plans"]


def test_unpublished_outbox_rows_unconsumed_events_and_unexplained_dead_letters_fail():
    f = healthy()
    f.poison = {b"poison"}
    f.dead_letters = [("plans", b"poison", "invalid event"), ("notifier", b"{}", "handler failed")]
    f.outbox_unsent = {"booking": 2}
    f.unconsumed = {"plans": 1}
    report = check(f)
    assert report.counts["dead letters (the driver's poison messages)"] == 1
    assert len(report.violations["dead letters"]) == 1
    assert report.violations["outbox"] and report.violations["consumed"]


def test_a_text_whose_window_closed_within_minutes_is_not_counted_as_lost():
    f = healthy()
    soon = KNOWN + timedelta(hours=1, minutes=1)  # the confirmation is useful for 1 minute only
    f.events["b1"] = [event(starts=soon)]
    f.texts = [TextRow(1, "p1", "b1", 1, "confirmation", "skipped", None),
               TextRow(2, "p1", "b1", 1, "day_of", "sent", "SM2", body("day_of", soon))]
    f.sends = [Send("SM2", PHONE, body("day_of", soon), KNOWN + timedelta(seconds=1))]
    report = check(f)
    assert report.ok, dict(report.violations)
    assert report.counts["texts expected"] == 1


def test_a_send_the_notifier_never_recorded_is_explained_only_by_a_crash_just_after_it():
    f = healthy()
    lost_record = Send("SM7", PHONE, "a text whose row was later cancelled", KNOWN + timedelta(minutes=3))
    f.sends.append(lost_record)
    assert check(f).violations["unexplained sends"]
    f.crashes = [lost_record.at + timedelta(seconds=2)]
    report = check(f)
    assert report.ok, dict(report.violations)
    assert report.counts["sent in the crash window, then recorded as not sent"] == 1


def test_a_missed_session_text_is_expected_unless_the_daily_cap_may_hold_it_back():
    f = healthy()
    f.events["b1"].append(event(version=2, status="noshow", known=KNOWN + timedelta(minutes=20)))
    f.daily_cap = {"c1": 5}
    assert check(f).violations["lost"] == ["missed for booking b1 v2: never planned"]
    f.daily_cap = {"c1": 3}  # two texts today already: a third may be capped
    assert check(f).ok


def test_the_quiet_hours_check_has_its_own_clock_arithmetic_with_literal_boundaries():
    from bench.load.checks import in_quiet_hours

    def at(tz: str, *when) -> datetime:
        return datetime(*when, tzinfo=ZoneInfo(tz)).astimezone(UTC)

    ny, vancouver = "America/New_York", "America/Vancouver"
    for hours, allowed, quiet in (((21, 8), [(20, 59), (8, 0)], [(21, 0), (7, 59)]),
                                  ((19, 9), [(18, 59), (9, 0)], [(19, 0), (8, 59)])):
        for h, m in allowed:
            assert not in_quiet_hours(at(ny, 2026, 6, 10, h, m), ny, *hours), (hours, h, m)
        for h, m in quiet:
            assert in_quiet_hours(at(ny, 2026, 6, 10, h, m), ny, *hours), (hours, h, m)
    for day in (datetime(2026, 3, 8), datetime(2026, 11, 1)):  # Vancouver's DST days
        y, mo, d = day.year, day.month, day.day
        assert in_quiet_hours(at(vancouver, y, mo, d, 7, 59), vancouver, 21, 8)
        assert not in_quiet_hours(at(vancouver, y, mo, d, 8, 0), vancouver, 21, 8)
        assert not in_quiet_hours(at(vancouver, y, mo, d, 20, 59), vancouver, 21, 8)
        assert in_quiet_hours(at(vancouver, y, mo, d, 21, 0), vancouver, 21, 8)
    # 08:00 in Vancouver on the spring-forward day is 15:00 UTC, and 07:59 PDT is 14:59
    assert in_quiet_hours(datetime(2026, 3, 8, 14, 59, tzinfo=UTC), vancouver, 21, 8)
    assert not in_quiet_hours(datetime(2026, 3, 8, 15, 0, tzinfo=UTC), vancouver, 21, 8)
    assert not in_quiet_hours(datetime(2026, 6, 10, 3, 0, tzinfo=UTC), vancouver, 24, 0), "none"


def test_a_text_accepted_at_20_59_passes_and_one_at_21_00_fails_the_quiet_hours_check():
    f = healthy()
    f.sends[1] = Send("SM2", PHONE, body("day_of"), datetime(2026, 3, 11, 0, 59, tzinfo=UTC))
    assert not check(f).violations["quiet hours"], "20:59 in New York (EDT)"
    f.sends[1] = Send("SM2", PHONE, body("day_of"), datetime(2026, 3, 11, 1, 0, tzinfo=UTC))
    assert "21:00 in America/New_York" in check(f).violations["quiet hours"][0]
    f.quiet = {"c1": (19, 9)}  # the clinic's own hours
    f.sends[1] = Send("SM2", PHONE, body("day_of"), datetime(2026, 3, 10, 22, 59, tzinfo=UTC))
    assert not check(f).violations["quiet hours"], "18:59"
    f.sends[1] = Send("SM2", PHONE, body("day_of"), datetime(2026, 3, 10, 23, 0, tzinfo=UTC))
    assert "19:00 in America/New_York (quiet 19-9)" in check(f).violations["quiet hours"][0]


def test_a_see_you_today_text_skipped_by_quiet_hours_is_not_expected():
    evening = datetime(2026, 3, 11, 0, 0, tzinfo=UTC)  # 20:00 in New York
    starts = datetime(2026, 3, 11, 12, 15, tzinfo=UTC)  # 08:15 the next morning
    f = healthy()
    f.events["b1"] = [event(starts=starts, known=evening)]
    f.settled_at = starts
    f.texts = [TextRow(1, "p1", "b1", 1, "confirmation", "sent", "SM1", body("confirmation", starts)),
               TextRow(2, "p1", "b1", 1, "day_of", "skipped", None)]
    f.sends = [Send("SM1", PHONE, body("confirmation", starts), evening + timedelta(seconds=1))]
    report = check(f)
    assert report.ok, dict(report.violations)
    assert report.counts["texts expected"] == 1


def test_a_ride_reminder_skipped_because_the_patient_texted_3_first_is_not_lost():
    starts = KNOWN + timedelta(hours=30)  # a dosing session: its ride reminder is due at once
    f = healthy()
    f.events = {"b1": [BookingEvent("b1", 1, "booked", "c1", "p1", TZ, KNOWN, KNOWN,
                                    starts_at=starts, ends_at=starts + timedelta(hours=2),
                                    is_dosing=True)]}
    f.sends = []

    def lost() -> list[str]:
        return [v.split(":")[0] for v in check(f).violations["lost"]]
    f.texts = [TextRow(3, "p1", "b1", 1, "ride_reminder", "skipped", None, None, KNOWN,
                       "ride already arranged")]
    assert "ride_reminder for booking b1 v1" in lost()  # the driver never had them text 3
    f.ride_confirmers = {"p1"}
    assert "ride_reminder for booking b1 v1" not in lost()
    f.texts = [TextRow(3, "p1", "b1", 1, "ride_reminder", "skipped", None, None, KNOWN,
                       "no consent")]
    assert "ride_reminder for booking b1 v1" in lost()  # skipped for another reason
    f.texts = [TextRow(3, "p1", "b1", 1, "ride_reminder", "pending", None, None, KNOWN)]
    assert "ride_reminder for booking b1 v1" in lost()
