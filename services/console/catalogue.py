"""The console's message catalogue: `python -m services.console.catalogue` extracts every
string from the templates (`_()`) and the code (`_()`, `N_()`), merges them into
`locale/fr_CA/LC_MESSAGES/messages.po` (translations kept; new strings left empty, old ones
dropped) and compiles `messages.mo` next to it. Both files are committed (no build step at
install); a test fails when a string has no French or the .mo is not the .po's."""

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
KEYWORDS = {"_": None, "N_": None, "gettext": None, "ngettext": (1, 2), "t": (2,)}


def extract() -> Catalog:
    """Every message the console shows, as a template catalogue."""
    template = Catalog(project="clinic-console", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(
            HERE, METHODS, OPTIONS, KEYWORDS, strip_comment_tags=True):
        template.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return template


def read() -> Catalog:
    with PO.open("rb") as f:
        return read_po(f, locale="fr_CA")


def compiled(catalog: Catalog) -> bytes:
    out = io.BytesIO()
    write_mo(out, catalog, use_fuzzy=False)
    return out.getvalue()


def update() -> list[str]:
    """Merge the extracted messages into the .po, write it and the .mo; returns the
    messages still without a translation."""
    template = extract()
    catalog = read() if PO.exists() else Catalog(locale="fr_CA", project="clinic-console")
    catalog.update(template, no_fuzzy_matching=True)
    catalog.obsolete.clear()
    PO.parent.mkdir(parents=True, exist_ok=True)
    with PO.open("wb") as f:
        write_po(f, catalog, width=100, omit_header=False, sort_output=True, no_location=True)
    MO.write_bytes(compiled(read()))
    return [m.id for m in read() if m.id and not m.string]


if __name__ == "__main__":
    missing = update()
    for message in missing:
        print(f"no French yet: {message!r}")
    sys.exit(1 if missing else 0)
