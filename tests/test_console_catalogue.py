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


def test_compose_gives_the_console_only_settings_it_reads_and_it_imports_no_service():
    from pathlib import Path

    import yaml

    from services.console.settings import ConsoleSettings

    root = Path(__file__).resolve().parent.parent
    compose = yaml.safe_load((root / "docker-compose.yml").read_text())
    env = compose["services"]["console"]["environment"]
    otel = {name for name in env if name.startswith("OTEL_")}  # the OpenTelemetry SDK's own
    assert set(env) - otel - ConsoleSettings.env_names() == set()
    for path in (root / "services" / "console").rglob("*.py"):
        text = path.read_text()
        for other in ("booking", "plans", "notifier"):
            assert f"services.{other}" not in text, path


def test_the_words_of_a_day_sheets_rows_are_in_the_catalogue():
    from services.console.day import words

    english, french = words("en"), words("fr")
    for key in ("check_in", "complete", "no_show", "ride", "reschedule", "cancel", "confirmed",
                "not_yet", "not_needed", "wants_another_time"):
        assert french[key] != english[key], key
    assert french["text_chip"] % {"kind": "Préparation", "state": "livré"} == "Préparation : livré"


def test_every_string_of_the_public_booking_page_has_a_spanish_translation():
    translated = {m.id: m.string for m in catalogue.read("es_US") if m.id}
    missing = [m.id for m in catalogue.extract(catalogue.PUBLIC) if m.id and not translated.get(m.id)]
    assert missing == []
    assert "Book a free 15-minute consultation" in translated
    mo = catalogue.SPANISH_PO.with_suffix(".mo")
    assert mo.read_bytes() == catalogue.compiled(catalogue.read("es_US"))
