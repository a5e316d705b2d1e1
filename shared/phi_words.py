"""The drug, procedure and diagnosis words a text must never carry (HIPAA minimum necessary:
"your appointment", never "your ketamine infusion"), in English, French and Spanish.

One list for everything that goes into texts: the templates (tests/test_notifier_templates.py)
and what clinics type (names, display names and addresses, checked by booking when they are
entered). Words are compared whole, after accents and case are folded ("Clinique de
kétamine" -> "ketamine"), so "Endeavour Clinic" or "Ivy Street" never match "IV". A
dotted abbreviation counts as the word ("I.V." is "iv").

Specialty words ("psychiatry", "wellness", "medicine") are not on the list: a provider may
be named by its specialty; only the drug, the procedure or the diagnosis is the patient's
secret.
"""

from __future__ import annotations

import re
import unicodedata

# Each entry matches one whole word (folded: lower case, no accents). `\w*` on a side lets
# the stem stand inside a longer word ("esketamine", "psychotherapy", "antidepressant").
DRUGS = (
    r"\w*ketamin\w*",  # ketamine, kétamine, ketamina, esketamine, eskétamine
    r"\w*spravato\w*",
    r"\w*psilocyb\w*", r"\w*psilocib\w*",  # psilocybin(e), psilocibina
    r"\w*psychedel\w*", r"\w*psicodel\w*",  # psychedelic, psychédélique, psicodélico
    r"mdma", r"lsd",
    r"drugs?", r"drogues?", r"drogas?",
    r"medications?", r"medicaments?", r"medicamentos?", r"medicacion(es)?",
    r"dos(e|es|ed|ing|age|ages|is)",  # dose, dosing, dosis ("dos", Spanish for two, passes)
)
PROCEDURES = (
    r"infus\w*", r"perfus\w*",  # infusion(s), infusión, infusiones, perfusion (fr)
    r"injec\w*", r"inyec\w*",  # injection, injectable, inyección
    r"intrav\w*", r"intramuscul\w*",  # intravenous, intraveineuse, intravenoso
    r"\w*nasal\w*",  # nasal, intranasal, nasale
    r"e?sprays?",
    r"lozenges?", r"troches?", r"pastilles?",
    r"\w*therap\w*", r"\w*terap\w*",  # therapy, thérapie, terapia, psychotherapy
    r"treatments?", r"traitements?", r"tratamientos?",
    r"\w*ana?esthe\w*", r"\w*anestes\w*",  # anesthesia, anesthésie, anestesia
    r"electroconvuls\w*", r"detox\w*", r"desintox\w*",
    r"ect", r"tms", r"kap", r"emdr",
)
DIAGNOSES = (
    r"\w*depres\w*",  # depression, dépression, depresión, antidepressant
    r"\w*suicid\w*",
    r"anxi\w*", r"ansied\w*", r"ansios\w*",  # anxiety, anxiété, ansiedad
    r"\w*trauma\w*", r"ptsd", r"tspt", r"tept",  # PTSD in en, fr, es
    r"trd", r"mdd", r"ocd", r"toc",
    r"bipola\w*", r"schizo\w*", r"esquizo\w*",
    r"addict\w*", r"adicci\w*", r"toxicoman\w*", r"alcoholi\w*", r"alcoolism\w*",
    r"\w*dissoci\w*", r"\w*disoci\w*",  # dissociation, disociativo
)
ROMAN_NUMERALS = (r"iv", r"im")
"""IV (intravenous) and IM (intramuscular): also Roman numerals, as in the street name
"Boulevard Henri-IV"; not counted in addresses."""

_WORD = re.compile(r"[^\W_]+")
_DOTTED = re.compile(r"\b(?:[^\W\d_]\.)+[^\W\d_]\b\.?")  # i.v. / I.V / e.c.t.
_LETTERS = str.maketrans({"ø": "o", "æ": "ae", "œ": "oe", "ł": "l", "đ": "d", "ı": "i"})


def _matcher(*groups: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("(?:" + "|".join(p for g in groups for p in g) + ")")


_EVERYWHERE = _matcher(DRUGS, PROCEDURES, DIAGNOSES, ROMAN_NUMERALS)
_IN_ADDRESSES = _matcher(DRUGS, PROCEDURES, DIAGNOSES)


def fold_words(text: str) -> list[str]:
    """The words of `text`, lower case, accents removed, dotted abbreviations joined."""
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    text = _DOTTED.sub(lambda m: m.group().replace(".", ""), text.casefold().translate(_LETTERS))
    return _WORD.findall(text)


def phi_words_in(text: str, *, address: bool = False) -> list[str]:
    """The drug, procedure and diagnosis words in `text` (folded, each once, in order);
    empty if there are none. In an `address`, IV and IM may be Roman numerals and pass."""
    matcher = _IN_ADDRESSES if address else _EVERYWHERE
    return list(dict.fromkeys(w for w in fold_words(text) if matcher.fullmatch(w)))
