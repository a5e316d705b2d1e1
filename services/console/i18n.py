"""The console's languages: English and Canadian French (Quebec clinics must offer French).
Every string people read lives in the Babel message catalogue
(`locale/fr_CA/LC_MESSAGES/messages.po`, compiled to `messages.mo`, both committed); the
templates and the code name the English text (`_()`, `N_()`), never the French. Dates and
times are formatted by Babel for the person's locale, in the site's time zone."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel import dates as babel_dates
from babel.support import NullTranslations, Translations
from jinja2 import Environment, FileSystemLoader, select_autoescape

HERE = Path(__file__).parent
LOCALE_DIR = HERE / "locale"
LANGUAGES = {"en": "en_US", "fr": "fr_CA"}
"""UI language -> Babel locale (catalogue and formats)."""
PUBLIC_LANGUAGES = {**LANGUAGES, "es": "es_US"}
"""The public booking page's languages (`book.py`): Spanish too, for its strings only
(`locale/es_US`)."""


def N_(message: str) -> str:
    """Mark a string for the catalogue; it is translated where it is shown."""
    return message


@functools.cache
def translations(language: str) -> NullTranslations:
    if language == "en":
        return NullTranslations()
    return Translations.load(str(LOCALE_DIR), [PUBLIC_LANGUAGES[language]], domain="messages")


def gettext(language: str, message: str) -> str:
    return translations(language).gettext(message)


def choose(accept_language: str | None, languages: Mapping[str, str] = LANGUAGES) -> str:
    """The UI language for someone not signed in, from the browser's Accept-Language (the
    first of `languages` it names)."""
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in languages:
            return tag
    return "en"


@functools.lru_cache(maxsize=4096)
def local_time(value: str, tz: str, language: str) -> str:
    """A time of day as people read it in `language`, at the site (`value`: ISO 8601);
    cached: a day sheet has few distinct times."""
    return babel_dates.format_time(_local(value, tz), "short", locale=LANGUAGES[language])


def _local(value: datetime | str, tz: str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(ZoneInfo(tz))


def environment(language: str, **names: Any) -> Environment:
    """A Jinja environment rendering in `language` (one per language: nothing is switched
    while requests in other languages render); `names`: globals every template sees."""
    env = Environment(loader=FileSystemLoader(HERE / "templates"),
                      autoescape=select_autoescape(["html"]),
                      extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True)
    env.install_gettext_translations(  # type: ignore[attr-defined]  # added by the extension
        translations(language), newstyle=True)
    locale = PUBLIC_LANGUAGES[language]
    env.globals.update(names)
    env.globals["lang"] = language
    env.globals["html_lang"] = {"fr": "fr-CA", "es": "es"}.get(language, "en")
    env.filters["time"] = lambda v, tz: babel_dates.format_time(
        _local(v, tz), "short", locale=locale
    )
    env.filters["datetime"] = lambda v, tz: babel_dates.format_datetime(
        _local(v, tz), "medium", locale=locale)
    env.filters["day"] = lambda d: babel_dates.format_date(
        d if isinstance(d, date) else date.fromisoformat(str(d)[:10]), "full", locale=locale)
    env.filters["shortday"] = lambda d: babel_dates.format_date(
        d if isinstance(d, date) else date.fromisoformat(str(d)[:10]), "EEE d MMM", locale=locale)
    env.filters["localiso"] = lambda v, tz: _local(v, tz).isoformat()
    env.filters["localday"] = lambda v, tz: babel_dates.format_date(_local(v, tz), "medium",
                                                                    locale=locale)
    return env
