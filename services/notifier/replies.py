"""What a text someone sent us means.

Only the defined replies change state: 1 confirm, 2 need another time, 3 ride home arranged
(a name may follow: "3 Sam", "3 - Sam", "3. Sam"), 4 take an offered waitlist slot. Case,
spaces, punctuation and a polite word around them ("1 thanks", "3. Sam!") do not matter;
anything else ("Sam", "ok thanks", "1 but I may be late") changes nothing and is kept for
staff. A patient who is dissociated must not drive: a ride is confirmed only by a 3.

Opt-out, opt-in and help keywords (whole message, any case, any punctuation around them;
sources in the README's notes on texts from patients):
- Twilio's own: STOP, STOPALL, UNSUBSCRIBE, END, QUIT, REVOKE, OPTOUT, CANCEL opt out; START,
  UNSTOP, YES opt back in; HELP, INFO ask for help. Twilio blocks and answers these itself.
- the same spelled as two words (FCC 24-24: "opt out"; "stop all"), and others carriers and
  providers honour in the US and Canada: REMOVE, UNSUB, TD;
- French (CWTA: ARRET and AIDE are mandatory in Canada): ARRET (ARRÊT), ARRETE, ARRETEZ,
  ARRETER, ARRETT, DESABONNER, DESINSCRIRE; AIDE;
- Spanish (US carriers' Spanish programs: ALTO and AYUDA; MMA: CANCELAR, BAJA): ALTO, PARAR,
  PARE, DETENER, CANCELAR, BAJA; AYUDA.
A reasonable revocation in plain words ("stop texting me", "ne m'envoyez plus de messages")
opts out too (see `revocation`).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from services.notifier.revocation import folded, revocation_language

TWILIO_OPT_OUT = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT", "REVOKE", "OPTOUT",
                            "CANCEL"})
"""Twilio's default opt-out keywords: it blocks the number and confirms it itself when one is
the whole message (any case)."""
TWILIO_OPT_IN = frozenset({"START", "UNSTOP", "YES"})
"""Twilio's default opt-in keywords (it lifts its block and confirms)."""
OPT_OUT: dict[str, str | None] = {
    **{word: None for word in TWILIO_OPT_OUT},
    "STOP ALL": None, "OPT OUT": None, "REMOVE": None, "UNSUB": None, "TD": None,
    **{word: "fr" for word in ("ARRET", "ARRETE", "ARRETEZ", "ARRETER", "ARRETT", "DESABONNER",
                               "DESINSCRIRE")},
    **{word: "es" for word in ("ALTO", "PARAR", "PARE", "DETENER", "CANCELAR", "BAJA")},
}
"""Opt-out keywords (folded: upper case, no accents, words separated by one space) and the
language they are in (None: any; the answer is in the patient's language)."""
OPT_IN: dict[str, str | None] = {word: None for word in TWILIO_OPT_IN}
HELP: dict[str, str | None] = {"HELP": None, "INFO": None, "AIDE": "fr", "AYUDA": "es"}
DIGITS = {"1": "confirm", "2": "reschedule", "3": "ride", "4": "take_slot"}
POLITE = frozenset({"OK", "OKAY", "K", "THANKS", "THANK", "YOU", "THX", "TY", "PLEASE", "PLS",
                    "MERCI", "GRACIAS", "SVP", "POR", "FAVOR", "OUI", "SI", "SURE", "GREAT",
                    "PERFECT", "PARFAIT", "PERFECTO"})
"""Words that may come with a digit reply without changing what it says ("1 thanks")."""
COURTESY = frozenset({"PLEASE", "PLS", "PLZ", "OK", "OKAY", "THANKS", "THANK", "YOU", "THX", "TY",
                      "MERCI", "SVP", "STP", "S", "IL", "VOUS", "TE", "PLAIT", "GRACIAS", "POR",
                      "FAVOR", "PORFAVOR", "HI", "HELLO", "HEY", "BONJOUR", "HOLA"})
"""Words around a keyword that leave it a keyword ("Stop please", "ARRET S'IL VOUS PLAIT")."""
NOT_A_NAME = frozenset({
    "NO", "NOT", "NOPE", "NON", "PAS", "JAMAIS", "NEVER", "NOBODY", "NOONE", "NONE", "NADIE",
    "NUNCA", "NINGUNO", "PERSONNE", "AUCUN", "AUCUNE", "CANT", "DONT", "WONT", "YET", "MAYBE",
    "PERHAPS", "QUIZAS", "LATER", "TBD", "UNSURE", "UNKNOWN", "WHO", "QUI", "QUIEN", "HELP",
    "STOP", "WAIT", "IF", "SI", "OR", "OU", "TOMORROW", "TODAY", "DEMAIN", "MANANA", "HOY",
})
"""Words that make what follows a 3 something other than the driver's name ("3 not yet")."""
_NAME = re.compile(r"[^\W\d_]+(?:[ '’\-.]+[^\W\d_]+){0,3}")
_NEGATION = re.compile(r"n['’]t\b", re.I)
_AFTER_3 = re.compile(r"\W*3(?:[\W_]+(?P<rest>.*))?", re.S)


@dataclass(frozen=True)
class Reading:
    """What a text means: `meaning` is one of confirm, reschedule, ride, take_slot, opt_out,
    opt_in, help, other; `driver` the name after a 3; `language` the language its words were
    in when they tell (AIDE: fr), else None; `by_twilio`: one of Twilio's default keywords,
    which Twilio acts on and answers itself; `phrase`: an opt-out in plain words."""

    meaning: str
    driver: str | None = None
    language: str | None = None
    by_twilio: bool = False
    phrase: bool = False


def ascii_digits(text: str) -> str:
    """`text` with the digits of any script (full-width, Arabic-Indic...) as ASCII digits."""
    return "".join(str(unicodedata.decimal(c)) if c.isdecimal() else c for c in text)


def fold(text: str) -> str:
    """`text` as keywords are compared: upper case, accents removed, digits of any script as
    ASCII digits, every run of other characters (spaces, punctuation, emoji) one space."""
    return folded(ascii_digits(text)).upper()


def interpret(body: str) -> Reading:
    """What `body` means (see the module's notes)."""
    word = _keyword(fold(body))
    twilio = body.strip().upper()
    if word in OPT_OUT:
        return Reading("opt_out", language=OPT_OUT[word], by_twilio=twilio in TWILIO_OPT_OUT)
    if word in OPT_IN:
        return Reading("opt_in", language=OPT_IN[word], by_twilio=twilio in TWILIO_OPT_IN)
    if word in HELP:
        return Reading("help", language=HELP[word])
    language = revocation_language(body)
    if language is not None:
        return Reading("opt_out", language=language, phrase=True)
    first, _, rest = word.partition(" ")
    if "?" in body:  # "1?", "3?": a question, not an answer
        return Reading("other")
    if first == "3":
        return _ride(body)
    if first in DIGITS and POLITE.issuperset(rest.split()):
        return Reading(DIGITS[first])
    return Reading("other")


def _keyword(folded: str) -> str:
    """`folded` without the polite words around it ("STOP PLEASE", "ARRET SVP": ARRET)."""
    words = folded.split()
    while words and words[0] in COURTESY:
        words.pop(0)
    while words and words[-1] in COURTESY:
        words.pop()
    return " ".join(words)


def _ride(body: str) -> Reading:
    """A reply starting with 3: the ride is arranged if nothing or only a name (or a polite
    word) follows; anything else is for staff ("3 not yet", "3pm?")."""
    match = _AFTER_3.fullmatch(ascii_digits(body).strip())
    if match is None:  # "3pm", "30"
        return Reading("other")
    rest = re.sub(r"[\W_]+$", "", match["rest"] or "")  # "3 Sam!", "3 Sam :)"
    words = fold(rest).split()
    if POLITE.issuperset(words):
        return Reading("ride")
    if (len(rest) <= 60 and _NAME.fullmatch(rest) and not _NEGATION.search(rest)
            and NOT_A_NAME.isdisjoint(words)):
        return Reading("ride", driver=rest)
    return Reading("other")
