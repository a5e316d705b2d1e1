"""What a patient's text means."""

import pytest

from services.notifier.replies import interpret


@pytest.mark.parametrize("body,meaning", [
    ("1", "confirm"), (" 2 ", "reschedule"), ("3", "ride"), ("stop", "opt_out"),
    ("CANCEL", "opt_out"), ("Unsubscribe", "opt_out"), ("start", "opt_in"), ("YES", "opt_in"),
    ("help", "help"), ("what time again?", "other"), ("12", "other"),
])
def test_replies_are_read_as_twilio_and_our_texts_mean_them(body, meaning):
    assert interpret(body, expecting_ride=False)[0] == meaning


def test_a_name_answers_the_ride_question_but_not_a_thank_you():
    assert interpret("Sam Lee", expecting_ride=True) == ("ride", "Sam Lee")
    assert interpret("Marie-Ève", expecting_ride=True) == ("ride", "Marie-Ève")
    assert interpret("Thanks", expecting_ride=True)[0] == "other"
    assert interpret("Sam Lee", expecting_ride=False)[0] == "other"
    assert interpret("my brother will drive me at 5pm ok", expecting_ride=True)[0] == "other"
