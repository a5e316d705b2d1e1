"""Twilio's error codes by what they mean, and what a refused text becomes (no database,
no Twilio): an account or sender problem leaves it pending, a passing one retries it, a
number problem marks the number and fails it, a message problem fails it alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.notifier.claimed import Claimed
from services.notifier.outcomes import Outcomes
from services.notifier.policy import Policy
from services.notifier.senders import SendError
from services.notifier.twilio_errors import CODES, ErrorClass, classify
from shared.events.notifier import SmsFailed
from tests.unit.due_texts import CLINIC, NOW, PATIENT, due_text


def test_the_table_classifies_twilios_codes_by_what_they_mean_with_their_source():
    expected = {20003: "sender", 20005: "sender", 30002: "sender", 21606: "sender",
                21659: "sender", 21212: "sender", 21608: "sender", 21219: "sender",
                21408: "sender", 30032: "sender", 30034: "sender",
                21211: "number", 21614: "number", 30006: "number", 30005: "number",
                21612: "number", 21610: "number",
                21617: "message", 30007: "message", 30019: "message",
                20429: "transient", 30001: "transient", 30003: "transient", 30008: "transient"}
    assert {code: str(CODES[code].kind) for code in expected} == expected
    assert CODES[21610].meaning.startswith("unsubscribed")
    assert CODES[20003].source == "https://www.twilio.com/docs/api/errors/20003"
    assert all(e.meaning and e.code == code for code, e in CODES.items())


def test_codes_not_in_the_table_are_classified_by_http_status_or_unknown():
    assert classify(None, 503) == (ErrorClass.TRANSIENT, "HTTP 503")
    assert classify(None, 429)[0] is ErrorClass.TRANSIENT
    assert classify(None, 401)[0] is ErrorClass.SENDER
    assert classify(99999, 400)[0] is ErrorClass.UNKNOWN, "never a number problem by default"
    assert classify("30007") == (ErrorClass.MESSAGE, CODES[30007].meaning)
    assert classify("not-a-code")[0] is ErrorClass.UNKNOWN


def refused(exc: SendError, **changes) -> Outcomes:
    return Outcomes().failed(Claimed(due_text(**changes), Policy(), claim=NOW), exc)


def test_an_account_or_sender_problem_leaves_the_text_pending_and_marks_no_number():
    out = refused(SendError("20003", "authentication failed", ErrorClass.SENDER))
    assert out.settled == [
        (7, NOW, "pending", "sending paused: Twilio 20003 (authentication failed)", None)]
    assert (out.problems, out.events) == ([], [])


def test_a_passing_error_retries_the_text_after_a_backoff_and_an_unknown_one_three_times_in_all():
    before = datetime.now(UTC)
    out = refused(SendError("20429", "too many requests", ErrorClass.TRANSIENT), attempts=1)
    [(text_id, claim, status, reason, due)] = out.settled
    assert (text_id, claim, status, reason) == (7, NOW, "pending", "20429")
    assert before + timedelta(seconds=1) <= due <= datetime.now(UTC) + timedelta(seconds=3)
    assert (out.problems, out.events) == ([], [])
    unknown = SendError("99999", "not in the table", ErrorClass.UNKNOWN)
    assert refused(unknown, attempts=2).settled[0][2] == "pending"
    out = refused(unknown, attempts=3)
    assert out.settled == [(7, NOW, "failed", "99999", None)]
    assert out.problems == []
    [event] = out.events
    assert event.payload == SmsFailed(text_id=7, error_code="99999", permanent=False)


def test_a_number_problem_marks_the_number_it_went_to_and_fails_the_text_for_good():
    out = refused(SendError("21211", "invalid number", ErrorClass.NUMBER))
    assert out.settled == [(7, NOW, "failed", "21211", None)]
    assert out.problems == [("+16045550199", "21211", "invalid number (Twilio 21211)")]
    [event] = out.events
    assert event.payload == SmsFailed(text_id=7, error_code="21211", permanent=True)
    assert (event.clinic_id, event.patient_id, event.producer) == (CLINIC, PATIENT, "notifier")
    driver = refused(SendError("21614", "not a mobile number", ErrorClass.NUMBER), kind="pickup",
                     ride_contact_phone="+16045550123")
    assert driver.problems == [("+16045550123", "21614", "not a mobile number (Twilio 21614)")]


def test_a_message_problem_fails_only_that_text():
    out = refused(SendError("30007", "filtered by the carrier", ErrorClass.MESSAGE))
    assert out.settled == [(7, NOW, "failed", "30007", None)]
    assert out.problems == []
    assert out.events[0].payload == SmsFailed(text_id=7, error_code="30007", permanent=True)
