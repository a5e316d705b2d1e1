"""The console's message catalogue: `python -m services.console.catalogue` extracts every
string from the templates (`_()`) and the code (`_()`, `N_()`), merges them into
`locale/fr_CA/LC_MESSAGES/messages.po` (translations kept; new strings left empty, old ones
dropped) and compiles `messages.mo` next to it; the public booking page's strings
(`book*.html`, `book.py`) go to `locale/es_US/` for Spanish the same way. The files are
committed (no build step at install); a test fails when a string has no French (or a public
one no Spanish) or a .mo is not its .po's."""

from __future__ import annotations

import io
import sys

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from services.console.i18n import HERE, LOCALE_DIR

PO = LOCALE_DIR / "fr_CA" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")
METHODS = [("templates/**.html", "jinja2"), ("**.py", "python")]
OPTIONS = {"templates/**.html": {"extensions": "jinja2.ext.i18n", "trimmed": "true"}}
SPANISH_PO = LOCALE_DIR / "es_US" / "LC_MESSAGES" / "messages.po"
PUBLIC = [("templates/book.html", "jinja2"), ("templates/book_*.html", "jinja2"),
          ("book.py", "python")]
"""The public page's files: the only strings with Spanish."""
CATALOGUES = {"fr_CA": (PO, METHODS), "es_US": (SPANISH_PO, PUBLIC)}
KEYWORDS = {"_": None, "N_": None, "gettext": None, "ngettext": (1, 2), "t": (2,)}


def extract(methods: list[tuple[str, str]] = METHODS) -> Catalog:
    """Every message the console shows (of the files `methods` name), as a template
    catalogue."""
    template = Catalog(project="clinic-console", charset="utf-8")
    options = {pattern: OPTIONS["templates/**.html"] for pattern, kind in methods
               if kind == "jinja2"}
    for filename, lineno, message, comments, context in extract_from_dir(
            HERE, methods, options, KEYWORDS, strip_comment_tags=True):
        template.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return template


def read(locale: str = "fr_CA") -> Catalog:
    with CATALOGUES[locale][0].open("rb") as f:
        return read_po(f, locale=locale)


def compiled(catalog: Catalog) -> bytes:
    out = io.BytesIO()
    write_mo(out, catalog, use_fuzzy=False)
    return out.getvalue()


def update(locale: str = "fr_CA") -> list[str | tuple[str, ...] | list[str]]:
    """Merge the extracted messages into the locale's .po, write it and the .mo; returns
    the messages still without a translation."""
    po, methods = CATALOGUES[locale]
    template = extract(methods)
    catalog = read(locale) if po.exists() else Catalog(locale=locale, project="clinic-console")
    catalog.update(template, no_fuzzy_matching=True)
    catalog.obsolete.clear()
    po.parent.mkdir(parents=True, exist_ok=True)
    with po.open("wb") as f:
        write_po(f, catalog, width=100, omit_header=False, sort_output=True, no_location=True)
    po.with_suffix(".mo").write_bytes(compiled(read(locale)))
    return [m.id for m in read(locale) if m.id and not m.string]


if __name__ == "__main__":
    missing = {locale: update(locale) for locale in CATALOGUES}
    for locale, messages in missing.items():
        for message in messages:
            print(f"no {locale} yet: {message!r}")
    sys.exit(1 if any(missing.values()) else 0)
