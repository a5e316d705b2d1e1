"""What a text someone sent us means: every keyword literally, the digits and the ride
reply, and the plain-words revocations that must and must not count."""

import pytest

from services.notifier.answers import Sender, answer, twiml
from services.notifier.replies import interpret
from services.notifier.revocation import revocation_language
from services.notifier.templates import segments


@pytest.mark.parametrize("body", [
    "STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT", "REVOKE", "OPTOUT", "CANCEL",
    "stop", "stopall", "unsubscribe", "end", "quit", "revoke", "optout", "cancel",
    "Stop", "Stopall", "Unsubscribe", "End", "Quit", "Revoke", "Optout", "Cancel",
    " stop ", "\tSTOP\n",
])
def test_twilios_opt_out_words_opt_out_and_twilio_confirms_them_itself(body):
    reading = interpret(body)
    assert (reading.meaning, reading.by_twilio) == ("opt_out", True)


@pytest.mark.parametrize("body", [
    "Stop.", "STOP!!", "stop please", "Please STOP", "Stop 🛑", "stop!",
    "OPT OUT", "opt out", "Opt-Out", "opt-out", "STOP ALL", "Stop all", "stop-all",
    "UNSUBSCRIBE.", "Cancel please", "end.", "QUIT!", "revoke.", "OPTOUT!", "stopall.",
    "REMOVE", "remove", "UNSUB", "unsub", "TD", "td",
])
def test_opt_out_words_count_with_any_case_spaces_punctuation_or_a_polite_word(body):
    reading = interpret(body)
    assert (reading.meaning, reading.language, reading.by_twilio) == ("opt_out", None, False)


@pytest.mark.parametrize("body", [
    "ARRET", "ARRÊT", "arret", "arrêt", "Arrêt.", "ARRETE", "ARRÊTE", "arrête", "ARRETEZ",
    "Arrêtez", "ARRETER", "Arrêter", "arrêter", "ARRETT", "DESABONNER", "désabonner",
    "DESINSCRIRE", "désinscrire", "Arrêt svp", "ARRET S'IL VOUS PLAIT",
])
def test_french_opt_out_words_opt_out_and_are_answered_in_french(body):
    reading = interpret(body)
    assert (reading.meaning, reading.language, reading.by_twilio) == ("opt_out", "fr", False)


@pytest.mark.parametrize("body", [
    "ALTO", "alto", "Alto.", "PARAR", "parar", "PARE", "pare", "DETENER", "detener",
    "CANCELAR", "cancelar", "BAJA", "baja", "Baja por favor",
])
def test_spanish_opt_out_words_opt_out_and_are_answered_in_spanish(body):
    reading = interpret(body)
    assert (reading.meaning, reading.language, reading.by_twilio) == ("opt_out", "es", False)


@pytest.mark.parametrize("body,by_twilio", [
    ("START", True), ("UNSTOP", True), ("YES", True), ("start", True), ("Unstop", True),
    ("yes", True), ("Start.", False), (" start ", True), ("YES!", False), ("unstop please", False),
])
def test_opt_in_words_opt_back_in(body, by_twilio):
    reading = interpret(body)
    assert (reading.meaning, reading.by_twilio) == ("opt_in", by_twilio)


@pytest.mark.parametrize("body,language", [
    ("HELP", None), ("help", None), ("Help!", None), ("INFO", None), ("info?", None),
    ("AIDE", "fr"), ("aide", "fr"), ("Aide.", "fr"), ("AYUDA", "es"), ("ayuda", "es"),
    ("¡Ayuda!", "es"), ("help please", None),
])
def test_help_words_ask_for_help_in_their_language(body, language):
    reading = interpret(body)
    assert (reading.meaning, reading.language) == ("help", language)


@pytest.mark.parametrize("body,meaning", [
    ("1", "confirm"), (" 1 ", "confirm"), ("1.", "confirm"), ("1!", "confirm"),
    ("1 thanks", "confirm"), ("1 merci", "confirm"), ("1 👍", "confirm"), ("１", "confirm"),
    ("2", "reschedule"), (" 2 ", "reschedule"), ("2.", "reschedule"), ("4", "take_slot"),
    ("4!", "take_slot"), ("٤", "take_slot"), ("3", "ride"), ("3.", "ride"),
    ("3 ok thanks", "ride"),
    ("12", "other"), ("1?", "other"), ("3?", "other"), ("2 can we do friday", "other"),
    ("1 but I may be late", "other"), ("1 2", "other"), ("what time again?", "other"),
])
def test_only_the_digits_change_state_with_punctuation_or_a_polite_word_around_them(body, meaning):
    assert interpret(body).meaning == meaning


@pytest.mark.parametrize("body,driver", [
    ("3 Sam", "Sam"), ("3 - Sam", "Sam"), ("3. Sam", "Sam"), ("3: Sam", "Sam"),
    ("3, Sam Lee", "Sam Lee"), ("3 Sam!", "Sam"), ("3 Marie-Ève", "Marie-Ève"),
    ("3 O'Neil", "O'Neil"), ("٣ Sam", "Sam"), ("3 Sam 🙂", "Sam"), ("3", None),
])
def test_a_ride_is_confirmed_by_3_and_a_name_may_follow(body, driver):
    assert (interpret(body).meaning, interpret(body).driver) == ("ride", driver)


@pytest.mark.parametrize("body", [
    "Sam", "Sam Lee", "Marie-Ève", "ok thanks", "Thanks", "Stop texting me", "Arrêter",
    "3 not yet", "3 no", "3 can't", "3pm", "30", "3 nobody yet", "3 maybe Sam",
    "my brother will drive me at 5pm ok",
])
def test_a_name_alone_or_free_text_never_confirms_a_ride(body):
    assert interpret(body).meaning != "ride"


@pytest.mark.parametrize("body,language", [
    ("Stop texting me", "en"), ("stop texting me!", "en"), ("Please stop texting me, thanks", "en"),
    ("Stop sending me these messages", "en"), ("don't text me", "en"), ("Don’t text me", "en"),
    ("Do not text me anymore", "en"), ("dont text me", "en"), ("Never text me again", "en"),
    ("remove me from this list", "en"), ("Remove me", "en"), ("take me off your list", "en"),
    ("no more texts", "en"), ("No more messages please", "en"), ("I want to unsubscribe", "en"),
    ("Unsubscribe me", "en"), ("Leave me alone", "en"), ("Wrong number", "en"),
    ("You have the wrong number", "en"), ("I don't want these texts", "en"),
    ("See you tomorrow. Stop texting me.", "en"),
    ("arrêtez de m'écrire", "fr"), ("Arrêtez de m’écrire svp", "fr"),
    ("Ne m'envoyez plus de messages", "fr"), ("ne plus m'envoyer de messages", "fr"),
    ("Plus de textos svp", "fr"), ("Désabonnez-moi", "fr"), ("je veux me désabonner", "fr"),
    ("Je ne veux plus recevoir de messages", "fr"), ("arrête les messages", "fr"),
    ("Mauvais numéro", "fr"),
    ("No me envíen más mensajes", "es"), ("no me manden mensajes", "es"),
    ("Dejen de escribirme", "es"), ("deja de enviarme mensajes", "es"),
    ("No quiero recibir más mensajes", "es"), ("No más mensajes por favor", "es"),
    ("Quiero darme de baja", "es"), ("Número equivocado", "es"),
])
def test_a_revocation_in_plain_words_opts_out(body, language):
    reading = interpret(body)
    assert (reading.meaning, reading.language, reading.phrase) == ("opt_out", language, True)


@pytest.mark.parametrize("body", [
    "ok thanks", "can't stop smiling, see you tomorrow", "Stop by the front desk?",
    "I'll stop at the pharmacy first", "no more texts after 8pm please",
    "remove me from the wait list", "remove me from the waitlist", "Take me",
    "Stop, you're making me blush", "Don't text me back, I'll call", "don't forget my ride",
    "I don't want this appointment", "Please don't cancel my appointment",
    "Arrête, c'est trop drôle", "Envoyez plus de messages", "merci, à demain",
    "no me envíen el recordatorio del martes", "Sam", "see you tomorrow", "never mind",
    "I want to stop", "stop stop stop " * 30,
])
def test_other_text_is_not_a_revocation(body):
    assert revocation_language(body) is None
    assert interpret(body).meaning != "opt_out"


def test_answers_name_who_sends_how_to_reach_a_person_and_how_to_stop_in_one_segment():
    clinic = Sender("Test Clinic", "+1 604 555 0100")
    assert answer("help", clinic, "en") == \
        "Test Clinic: appointment texts. For help call (604) 555-0100. Reply STOP to opt out."
    assert answer("help", clinic, "fr") == ("Test Clinic: textos de rendez-vous. Aide: appelez "
                                            "le (604) 555-0100. Répondez ARRET pour ne plus en recevoir.")
    assert answer("help", clinic, "es") == ("Test Clinic: mensajes de citas. Ayuda: llame al "
                                            "(604) 555-0100. Responda ALTO para no recibir mas.")
    assert answer("help", Sender("Clinic reminders", ""), "en") == \
        "Clinic reminders: appointment texts. For help call your clinic. Reply STOP to opt out."
    assert answer("opt_out", clinic, "en") == \
        "Test Clinic: you will get no more texts from this number. Reply START to get them again."
    for kind in ("help", "opt_out", "opt_in"):
        for language in ("en", "fr", "es"):
            assert segments(answer(kind, Sender("Bayside Wellness Clinic", "+1 604 555 0100"),
                                   language)) == 1, (kind, language)
    assert twiml("A & B") == \
        '<?xml version="1.0" encoding="UTF-8"?><Response><Message>A &amp; B</Message></Response>'
    assert twiml(None) == '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
