"""What a text can carry: the GSM-7 alphabet (accents folded as texts fold them), segment
counting, and the caps on what clinics type that goes into texts.

Booking checks names, display names and addresses against these when they are entered; the
notifier folds and counts its texts with the same functions. The caps keep every kind of
text, in every language, within 3 segments even with every field at its cap (the longest
dates and times the locales write, the longest fasting text and the STOP notice included):
tests/test_text_fields.py computes that worst case.

A value that is not GSM-7 once folded is refused rather than allowed to switch its texts to
UCS-2: one such character makes the whole text UCS-2, 67 characters a segment instead of
153, and the longest templates alone would then take 3 segments.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from shared.phi_words import phi_words_in

CLINIC_NAME_MAX = 40
"""What texts call the clinic: its `sms_name`, else its name."""
SITE_NAME_MAX = 40
"""What texts call a site: its `sms_name`, else its name."""
ADDRESS_MAX = 100
"""A site's address (the day-of and pickup texts carry it)."""
PHONE_MAX = 40
"""The number texts quote (the booking API's phone fields hold at most this)."""
JOIN_LINK_MAX = 60
"""A remote visit's video link or call-in number (its texts carry it)."""
PREP_ITEMS_MAX = 100
"""What a session type's prep texts say to bring, in one language."""

# GSM 03.38 basic character set and the extension table (extension chars count twice)
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
GSM7 = GSM7_BASIC | GSM7_EXTENSION
_EXTENSION = re.compile("[" + re.escape("".join(sorted(GSM7_EXTENSION))) + "]")
_NOT_GSM7 = re.compile("[^" + re.escape("".join(sorted(GSM7))) + "]")
"""A character outside GSM-7: one search of a text in C is half the time of the set's test."""
_LINE_BREAKS = frozenset("\n\r\f")

# Characters outside GSM-7 replaced by their closest GSM-7 form (as Twilio's Smart Encoding
# does), so that a French or Spanish text is not sent as UCS-2 with 70-character segments.
# Other accented letters lose their accents (see _fold_char).
_GSM_FOLD = str.maketrans({
    "\u202f": " ", "\xa0": " ", "’": "'", "‘": "'", "`": "'", "“": '"', "”": '"', "«": '"',
    "»": '"', "–": "-", "—": "-", "\u2010": "-", "\u2011": "-",
    "â": "a", "á": "a", "ê": "e", "ë": "e", "î": "i", "ï": "i", "í": "i", "ô": "o", "ó": "o",
    "û": "u", "ú": "u", "ç": "c", "À": "A", "Â": "A", "Á": "A", "È": "E", "Ê": "E", "Í": "I",
    "Ó": "O", "Ô": "O", "Ú": "U", "Û": "U", "œ": "oe", "Œ": "OE", "ł": "l", "Ł": "L",
})


@lru_cache(maxsize=4096)
def _fold_char(c: str) -> str:
    """`c` without its accents if that is GSM-7 ("Î" -> "I", "ÿ" -> "y"), else `c`."""
    bare = "".join(x for x in unicodedata.normalize("NFKD", c) if not unicodedata.combining(x))
    return bare if bare and GSM7.issuperset(bare) else c


def gsm_fold(text: str) -> str:
    """`text` with the non-GSM-7 characters that have a GSM-7 form replaced by it (what
    cannot be folded stays)."""
    if (text.isascii() and "`" not in text) or _NOT_GSM7.search(text) is None:
        return text  # (ASCII outside GSM-7 but "`" is control characters: no GSM-7 form)
    text = text.translate(_GSM_FOLD)
    if _NOT_GSM7.search(text) is None:
        return text
    return "".join(c if c in GSM7 else _fold_char(c) for c in text)


def septets(text: str) -> int | None:
    """How many GSM-7 units `text` takes (extension characters count twice), or None if
    it is not GSM-7."""
    # printable ASCII is GSM-7 but for "`": a test in C, where the set's takes microseconds
    if not ((text.isascii() and text.isprintable() and "`" not in text)
            or _NOT_GSM7.search(text) is None):
        return None
    if _EXTENSION.search(text) is None:  # the usual text: one pass, no list
        return len(text)
    return len(text) + len(_EXTENSION.findall(text))


def segments(body: str) -> int:
    """How many SMS segments `body` takes: GSM-7 (160, or 153 each when split) or UCS-2
    (70, or 67 each when split)."""
    units = septets(body)
    single, multi = 160, 153
    if units is None:
        units = sum(2 if ord(c) > 0xFFFF else 1 for c in body)
        single, multi = 70, 67
    if units <= single:
        return 1
    return -(-units // multi)


def text_field_problem(value: str, cap: int, *, address: bool = False) -> str | None:
    """Why `value` (a name, display name or address that texts carry) cannot go into texts,
    as the end of a sentence naming the field; None if it can. Never quotes the value."""
    folded = gsm_fold(value)
    units = septets(folded)
    if units is None or not _LINE_BREAKS.isdisjoint(folded):
        return ("has characters a text cannot carry (letters with accents are fine; emoji, "
                "other scripts and line breaks are not)")
    words = phi_words_in(value, address=address)
    if words:
        return (f"names a drug, procedure or diagnosis ({', '.join(words)}), which texts "
                "must never carry")
    if units > cap:
        return f"is too long for texts: at most {cap} characters (€ [ ] {{ }} | ~ ^ \\ count twice)"
    return None
