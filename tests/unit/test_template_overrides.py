"""A network's own words for a text, checked before they are saved (no database)."""

from __future__ import annotations

from services.notifier.overrides import Problem, preview, problems, worst_case_segments

GOOD = "{clinic}: see you on {date} at {time}. Reply 1 to confirm, 2 to change. {phone}"


def test_words_that_carry_what_the_kind_needs_and_fit_pass():
    assert problems("confirmation", "en", GOOD, False) == []
    assert worst_case_segments("en", GOOD) == 2


def test_a_drug_procedure_or_diagnosis_word_is_refused_with_the_word():
    assert problems("confirmation", "en", "{clinic}: your Spravato session on {date}. {phone}",
                    False) == [Problem("body", "body names a drug, procedure or diagnosis "
                                               "(spravato), which texts must never carry")]
    assert problems("day_of", "fr", "{clinic}: votre perfusion à {time}. {phone}", False)[0] \
        .message.startswith("body names a drug, procedure or diagnosis (perfusion)")


def test_placeholders_must_be_the_kinds_and_those_it_needs_present():
    [unknown] = problems("confirmation", "en", "{clinic} {patient_name} {phone}", False)
    assert unknown.message.startswith(
        "body has placeholders the confirmation text does not know: {patient_name} (known: "
        "{clinic}, {date}, {phone}, {site}, {time})")
    assert problems("confirmation", "en", "{clinic}: see you on {date}.", False) == [
        Problem("body", "body lacks placeholders the confirmation text needs: {phone}")]
    assert problems("prep", "en", "{clinic}: {date} at {time}. {fasting} {phone}", False) == [
        Problem("body", "body lacks placeholders the prep text needs: {ride}")]
    assert problems("day_of_remote", "en", "{clinic}: today at {time}. {phone}", False) == [
        Problem("body", "body lacks placeholders the day_of_remote text needs: {join}")]
    # a remote visit's texts never carry an address
    assert "does not know: {address}" in problems(
        "day_of_remote", "en", "{clinic}: {address} {join} {phone}", False)[0].message


def test_a_placeholder_is_only_ever_a_name():
    for body in ("{clinic.__class__} {phone}", "{clinic:>300} {phone}", "{clinic!r} {phone}",
                 "{clinic} {phone} {", "{clinic[0]} {phone}"):
        found = problems("missed", "en", body, False)
        assert found and found[0].field == "body", body
        assert "placeholder is only ever {name}" in found[0].message or \
            "unbalanced braces" in found[0].message, (body, found)


def test_at_most_three_segments_with_every_field_at_its_longest():
    long = GOOD + " " + "Please remember to bring what you need." * 8
    assert problems("confirmation", "en", long, False) == [
        Problem("body", "body takes 4 segments with every field at its longest: at most 3")]


def test_ucs2_only_when_accepted():
    body = "{clinic} 🙂 see you {date} {time}. {phone}"
    assert [p.field for p in problems("confirmation", "en", body, False)] == ["accept_ucs2"]
    assert problems("confirmation", "en", body, True) == []
    assert problems("confirmation", "fr", "{clinic}: à bientôt le {date} à {time}. {phone}",
                    False) == []  # accents fold to GSM-7


def test_the_preview_renders_a_sample_with_its_segments_and_encoding():
    p = preview("confirmation", "en", GOOD, False)
    assert p.text == ("Cedar Grove: see you on Wed Dec 9 at 10:00 AM. Reply 1 to confirm, 2 to "
                      "change. (604) 555-0100")
    assert (p.segments, p.encoding, p.worst_case_segments, p.problems) == (1, "GSM-7", 2, [])
    emoji = preview("missed", "es", "{clinic} 🙂 {date} {phone}", False)
    assert emoji.encoding == "UCS-2" and emoji.problems[0].field == "accept_ucs2"
    remote = preview("confirmation_remote", "en", "{clinic}: {date} {time}. {join} {phone}", False)
    assert "By video: https://meet.example.com/cg-1a2b3c" in remote.text
