"""What a text someone sent us does, given who its number is to (no database): a reply acts
only for one patient's number, opt-outs and opt-ins are the number's, and who hears of them;
which answer it gets, and in what language."""

from __future__ import annotations

from uuid import UUID

from services.notifier.inbox import Act, aimed, answer_kind, answer_language, by_clinic, decide, told, with_twilio
from services.notifier.replies import Reading
from services.notifier.store import Party
from shared.events.notifier import (
    PatientConfirmed,
    PatientOptedOut,
    RescheduleRequested,
    RideConfirmed,
    RideContactOptedOut,
    WaitlistOfferAccepted,
)

NET_A = UUID("00000000-0000-0000-0000-0000000000a1")
NET_B = UUID("00000000-0000-0000-0000-0000000000b1")
ANN, BEN, CAL = (UUID(f"00000000-0000-0000-0000-00000000000{i}") for i in (1, 2, 3))
BOOKING = UUID("00000000-0000-0000-0000-00000000b00c")
OFFER = UUID("00000000-0000-0000-0000-0000000000ff")
ANNS = Party("patient", NET_A, ANN, "fr")
BENS = Party("patient", NET_A, BEN, "en")
CALS_DRIVER = Party("ride_contact", NET_B, CAL, "es")


def test_a_reply_acts_only_when_its_number_is_one_patients():
    act = decide(Reading("confirm"), [ANNS, CALS_DRIVER], opted_out=False)
    assert (act.matched, act.note, act.needs_target) == (ANNS, None, True)
    for parties, note in (([], "unknown number"), ([ANNS, BENS], "number shared by patients"),
                          ([CALS_DRIVER], "a ride contact's number")):
        act = decide(Reading("confirm"), parties, opted_out=False)
        assert (act.matched, act.note, act.payload, act.needs_target) == (None, note, None, False)


def test_a_reply_makes_the_event_of_what_it_is_about_or_says_why_not():
    def reply(meaning: str, target, driver=None) -> Act:
        return aimed(decide(Reading(meaning, driver=driver), [ANNS], False), target)

    assert reply("confirm", BOOKING).payload == PatientConfirmed(booking_id=BOOKING)
    assert reply("reschedule", BOOKING).payload == RescheduleRequested(booking_id=BOOKING)
    ride = reply("ride", BOOKING, driver="Sam")
    assert (ride.payload, ride.booking_id) == (
        RideConfirmed(booking_id=BOOKING, driver_name="Sam"), BOOKING)
    slot = reply("take_slot", OFFER)
    assert (slot.payload, slot.offer_id, slot.booking_id) == (
        WaitlistOfferAccepted(offer_id=OFFER), OFFER, None)
    none = reply("confirm", None)
    assert (none.payload, none.note) == (None, "no upcoming appointment")
    none = reply("take_slot", None)
    assert (none.payload, none.note) == (None, "no open offer")


def test_an_opt_out_or_opt_in_is_the_numbers_whoever_has_it():
    for parties in ([], [ANNS, BENS], [CALS_DRIVER]):
        out = decide(Reading("opt_out"), parties, opted_out=False)
        assert (out.note, out.needs_target) == (None, False)
    assert decide(Reading("opt_out"), [ANNS], opted_out=True).note == "already opted out"
    assert decide(Reading("opt_in"), [ANNS], opted_out=False).note == "not opted out"
    assert decide(Reading("opt_in"), [ANNS], opted_out=True).note is None


def test_help_is_always_answered_and_an_opt_out_or_in_once_unless_twilio_answers_it():
    assert answer_kind(Reading("help"), opted_out=True) == "help"
    assert answer_kind(Reading("opt_out"), opted_out=False) == "opt_out"
    assert answer_kind(Reading("opt_out", by_twilio=True), opted_out=False) is None
    assert answer_kind(Reading("opt_out"), opted_out=True) is None
    assert answer_kind(Reading("opt_in"), opted_out=True) == "opt_in"
    assert answer_kind(Reading("opt_in", by_twilio=True), opted_out=True) is None
    assert answer_kind(Reading("opt_in"), opted_out=False) is None
    assert answer_kind(Reading("confirm"), opted_out=False) is None


def test_the_answer_is_in_the_texts_language_else_the_one_its_parties_share_else_english():
    assert answer_language(Reading("help", language="es"), [ANNS]) == "es"
    assert answer_language(Reading("help"), [ANNS]) == "fr"
    assert answer_language(Reading("help"), [ANNS, Party("ride_contact", NET_B, BEN, "fr")]) == "fr"
    assert answer_language(Reading("help"), [ANNS, BENS]) == "en"
    assert answer_language(Reading("help"), []) == "en"


def test_twilios_own_keyword_match_is_taken_as_twilio_read_it():
    assert with_twilio(Reading("other"), "STOP") == Reading("opt_out", by_twilio=True)
    assert with_twilio(Reading("help", language="fr"), "HELP") == Reading(
        "help", language="fr", by_twilio=True)
    assert with_twilio(Reading("opt_out", language="es"), "START") == Reading(
        "opt_in", by_twilio=True)
    assert with_twilio(Reading("confirm"), "") == Reading("confirm")


def test_every_party_of_a_number_hears_of_its_opt_out_once_and_each_network_sees_its_own():
    events = told([ANNS, BENS, ANNS, CALS_DRIVER], PatientOptedOut(),
                  RideContactOptedOut(phone_e164="+16045550199"))
    assert sorted((e.event_type, e.clinic_id, e.patient_id, e.producer) for e in events) == [
        ("PatientOptedOut", NET_A, ANN, "notifier"), ("PatientOptedOut", NET_A, BEN, "notifier"),
        ("RideContactOptedOut", NET_B, CAL, "notifier")]
    assert by_clinic([ANNS, CALS_DRIVER, BENS]) == {NET_A: ([ANN, BEN], []), NET_B: ([], [CAL])}
