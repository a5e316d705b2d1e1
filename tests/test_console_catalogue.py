"""The console's French: every string it shows has a Canadian French translation in the
catalogue, and the committed .mo is the .po compiled."""

from services.console import catalogue


def test_every_string_of_the_console_has_a_french_translation():
    translated = {m.id: m.string for m in catalogue.read() if m.id}
    missing = [m.id for m in catalogue.extract() if m.id and not translated.get(m.id)]
    assert missing == []


def test_the_committed_mo_file_is_the_po_file_compiled():
    assert catalogue.MO.read_bytes() == catalogue.compiled(catalogue.read())


def test_a_string_named_in_the_code_reads_in_french():
    from services.console.i18n import gettext

    assert gettext("fr", "Day sheet") == "Feuille du jour"
    assert gettext("en", "Day sheet") == "Day sheet"
