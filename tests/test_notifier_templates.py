"""Text content: no PHI, clinic named, languages, segment counts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.notifier.dispatcher import _body
from services.notifier.templates import FASTING, STOP_NOTICE, TEMPLATES, TextContext, render, segments
from shared.phi_words import fold_words, phi_words_in


def names_phi_or_asks_for_cancel(text: str) -> list[str]:
    """The drug, procedure and diagnosis words in `text`, and CANCEL (a Twilio opt-out
    word: a text must never ask for it)."""
    return phi_words_in(text) + [w for w in fold_words(text) if w.startswith("cancel")]


def contexts():
    for lang in ("en", "fr", "es"):
        for rule in (None, *FASTING):
            yield TextContext(lang, "Cedar Grove", "+1 604 555 0100", "Vancouver", "1 Main St",
                              "America/Vancouver", datetime(2026, 8, 15, 17, 30, tzinfo=UTC), rule)


def test_no_template_names_a_drug_procedure_or_diagnosis_or_asks_for_cancel():
    for variants in (*TEMPLATES.values(), *FASTING.values(), STOP_NOTICE):
        for text in variants.values():
            assert names_phi_or_asks_for_cancel(text) == [], text


@pytest.mark.parametrize("kind", TEMPLATES)
def test_every_rendered_text_names_the_clinic_and_its_phone_and_fits_two_segments(kind):
    for ctx in contexts():
        body = render(kind, ctx, first_text=True)
        assert names_phi_or_asks_for_cancel(body) == [], body
        assert "Cedar Grove" in body and "(604) 555-0100" in body
        assert "{" not in body
        assert segments(body) <= 2, (ctx.language, body)


def test_texts_are_in_the_patients_language_at_the_sites_local_time():
    ctx = TextContext("fr", "Cedar Grove", "+1 514 555 0100", "Montreal", "1 rue X",
                      "America/Toronto", datetime(2026, 12, 1, 15, 0, tzinfo=UTC), None)
    body = render("confirmation", ctx)
    assert "rendez-vous" in body and "10 h 00" in body and "déc." in body
    es = render("day_of", TextContext("es", "C", "1", "NY", "Broadway", "America/New_York",
                                      datetime(2026, 7, 1, 14, 0, tzinfo=UTC), None))
    assert "10:00" in es and "hoy" in es


def test_segment_counts_follow_gsm7_and_ucs2_rules():
    assert segments("a" * 160) == 1
    assert segments("a" * 161) == 2
    assert segments("a" * 306) == 2 and segments("a" * 307) == 3
    assert segments("€" * 80) == 1 and segments("€" * 81) == 2  # extension chars count twice
    assert segments("ê" * 70) == 1 and segments("ê" * 71) == 2  # UCS-2
    assert segments("😀" * 35) == 1 and segments("😀" * 36) == 2  # surrogate pairs


def test_french_and_spanish_texts_stay_in_gsm7():
    for ctx in contexts():
        for kind in TEMPLATES:
            body = render(kind, ctx)
            assert segments(body) == segments("a" * len(body)), (ctx.language, kind, body)


def test_texts_saying_the_same_are_rendered_once_and_each_keeps_its_own_words():
    """The dispatcher renders each distinct text once (`_body`, many patients of one slot
    get the same words): the "reply STOP" notice and a network's own words are part of what
    makes a text distinct."""
    ctx = TextContext("en", "Cedar Grove", "+16045550100", "Vancouver", "1 Main St",
                      "America/Vancouver", datetime(2026, 8, 15, 17, 30, tzinfo=UTC), None)
    plain = ("Cedar Grove: your appointment at Vancouver is on Sat Aug 15 at 10:30 AM. Reply 1"
             " to confirm, 2 to reschedule. Questions: (604) 555-0100")
    _body.cache_clear()
    assert _body("confirmation", ctx, False, None) == (plain, 1)
    assert _body("confirmation", ctx._replace(), False, None) == (plain, 1)
    assert _body("confirmation", ctx, True, None) == (plain + " Reply STOP to opt out.", 1)
    assert _body("confirmation", ctx, False, "{clinic}: see you {date} at {time}. {phone}") == (
        "Cedar Grove: see you Sat Aug 15 at 10:30 AM. (604) 555-0100", 1)
    assert _body("confirmation", ctx._replace(language="fr"), False, None) == (
        "Cedar Grove: votre rendez-vous à Vancouver est le sam. 15 aout à 10 h 30. Répondez 1"
        " pour confirmer, 2 pour changer. Questions: (604) 555-0100", 1)
    info = _body.cache_info()
    assert (info.hits, info.misses) == (1, 4)
