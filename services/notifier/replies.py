"""What a patient's text means. Digits, never words Twilio treats as opt-out (CANCEL is
one): 1 confirm, 2 need another time, 3 (or the driver's name) ride arranged, 4 take an
offered waitlist slot; STOP-family
words opt out and START-family words opt back in, as Twilio does itself."""

from __future__ import annotations

import re

STOP_WORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT", "REVOKE", "OPTOUT", "CANCEL"}
START_WORDS = {"START", "UNSTOP", "YES"}
HELP_WORDS = {"HELP", "INFO"}
NOT_NAMES = {"THANKS", "THANK YOU", "THX", "OK", "OKAY", "SURE", "NO", "NOPE", "HI", "HELLO",
             "MERCI", "GRACIAS", "OUI", "SI", "NON", "DONE", "GOT IT"}
_NAME = re.compile(r"^[^\W\d_]+(?:[ '\-.][^\W\d_]+){0,3}$")


def interpret(body: str, expecting_ride: bool) -> tuple[str, str | None]:
    """(meaning, driver name): meaning is one of confirm, reschedule, ride, take_slot,
    opt_out, opt_in, help, other."""
    text = body.strip()
    word = text.upper().strip(".! ")
    if word in STOP_WORDS:
        return "opt_out", None
    if word in START_WORDS:
        return "opt_in", None
    if word in HELP_WORDS:
        return "help", None
    if word == "1":
        return "confirm", None
    if word == "2":
        return "reschedule", None
    if word == "3":
        return "ride", None
    if word == "4":
        return "take_slot", None
    if expecting_ride and _NAME.match(text) and len(text) <= 60 and word not in NOT_NAMES:
        return "ride", text
    return "other", None
