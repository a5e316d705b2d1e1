"""Clinics' own words: a network's override of a text template, per kind and language,
checked before it is saved (pure functions, no I/O; services/notifier/api.py stores them,
versioned, and the dispatcher renders with the latest).

An override is refused when it
- names a drug, procedure or diagnosis (shared/phi_words.py, the list every text follows);
- has a placeholder its kind does not know (or one with a format or conversion: a
  placeholder is only ever `{name}`);
- lacks one its kind needs: `{clinic}` and `{phone}` always, the ride ask `{ride}` in the
  prep text, the way to join `{join}` in a remote visit's texts;
- would take more than 3 segments with every field at its longest (the caps of
  shared/sms.py, the longest dates and times the locales write, the STOP notice);
- is not GSM-7 once accents are folded, unless UCS-2 (67 characters a segment instead of
  153) is accepted explicitly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from string import Formatter
from typing import Any
from zoneinfo import ZoneInfo

from services.notifier.templates import (
    FASTING,
    JOIN,
    STOP_NOTICE,
    TEMPLATES,
    TextContext,
    fill,
    local_times,
    render,
)
from shared.phi_words import phi_words_in
from shared.sms import (
    ADDRESS_MAX,
    CLINIC_NAME_MAX,
    JOIN_LINK_MAX,
    PHONE_MAX,
    PREP_ITEMS_MAX,
    SITE_NAME_MAX,
    gsm_fold,
    segments,
    septets,
)

MAX_SEGMENTS = 3
BODY_MAX = 640
"""Characters an override may have at all (a text of 3 segments has at most 459)."""
NEEDED_BY_KIND = {"prep": {"ride"}, "confirmation_remote": {"join"},
                  "day_of_remote": {"join"}}
"""What a kind's texts must carry besides the clinic and its phone."""
NEEDED = {"clinic", "phone"}


@dataclass(frozen=True)
class Problem:
    """Why an override cannot be saved: the request field at fault and a sentence (never
    quoting the override)."""

    field: str
    message: str


@dataclass(frozen=True)
class Preview:
    """An override rendered for a sample appointment, and what it costs at worst."""

    text: str
    segments: int
    encoding: str
    worst_case_segments: int
    problems: list[Problem]


def shown(p: Preview) -> dict[str, Any]:
    """A preview as the API answers it."""
    return asdict(p)


def placeholders(body: str) -> tuple[set[str], list[str]]:
    """The placeholders of `body` and what is wrong with its braces or placeholders (a
    format, a conversion, an attribute or index, an unclosed brace)."""
    names: set[str] = set()
    wrong: list[str] = []
    try:
        parts = list(Formatter().parse(body))
    except ValueError:
        return names, ["unbalanced braces (write a placeholder as {name})"]
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            wrong.append("a placeholder is only ever {name}, with no format, conversion, "
                         "attribute or index")
            continue
        names.add(name)
    return names, wrong


@cache
def allowed(kind: str) -> frozenset[str]:
    """The placeholders a kind's texts may use: those of its built-in templates."""
    return frozenset().union(*(placeholders(t)[0] for t in TEMPLATES[kind].values()))


def problems(kind: str, lang: str, body: str, accept_ucs2: bool) -> list[Problem]:
    """Everything that keeps `body` from being `kind`'s text in `lang` (empty: it may be
    saved)."""
    found: list[Problem] = []
    words = phi_words_in(body)
    if words:
        found.append(Problem("body", f"body names a drug, procedure or diagnosis "
                                     f"({', '.join(words)}), which texts must never carry"))
    names, wrong = placeholders(body)
    found += [Problem("body", f"body has {w}") for w in wrong]
    unknown = sorted(names - allowed(kind))
    if unknown:
        found.append(Problem("body", f"body has placeholders the {kind} text does not know: "
                                     f"{', '.join('{' + n + '}' for n in unknown)} (known: "
                                     f"{', '.join('{' + n + '}' for n in sorted(allowed(kind)))})"))
    missing = sorted((NEEDED | NEEDED_BY_KIND.get(kind, set())) - names)
    if missing:
        found.append(Problem("body", f"body lacks placeholders the {kind} text needs: "
                                     f"{', '.join('{' + n + '}' for n in missing)}"))
    if not renderable(kind, body):
        return found  # it cannot be rendered to count it
    if encoding(body) == "UCS-2" and not accept_ucs2:
        found.append(Problem("accept_ucs2", "body has characters outside GSM-7 even with "
                                            "accents folded (emoji, other scripts): its texts "
                                            "would go as UCS-2, 67 characters a segment; set "
                                            "accept_ucs2 to accept that"))
    worst = worst_case_segments(lang, body)
    if worst > MAX_SEGMENTS:
        found.append(Problem("body", f"body takes {worst} segments with every field at its "
                                     f"longest: at most {MAX_SEGMENTS}"))
    return found


def renderable(kind: str, body: str) -> bool:
    """Whether `body` can be filled in: well-formed placeholders its kind knows."""
    names, wrong = placeholders(body)
    return not wrong and names <= allowed(kind)


def encoding(text: str) -> str:
    """GSM-7 or UCS-2, once accents are folded as texts fold them."""
    return "GSM-7" if septets(gsm_fold(text)) is not None else "UCS-2"


def worst_case_segments(lang: str, body: str) -> int:
    """The segments `body` takes in `lang` with every field at its cap, the longest date,
    time, fasting text and way to join, and the STOP notice."""
    longest_date, longest_time = _longest_date_and_time(lang)
    link = "https://" + "W" * (JOIN_LINK_MAX - len("https://"))
    text = fill(gsm_fold(body), lang, clinic="W" * CLINIC_NAME_MAX, phone="9" * PHONE_MAX,
                site="W" * SITE_NAME_MAX, address="W" * ADDRESS_MAX, date=longest_date,
                time=longest_time, end_time=longest_time,
                fasting=max((f[lang] for f in FASTING.values()), key=len),
                join=max((j[lang].format(link=link) for j in JOIN.values()), key=len),
                bring="W" * PREP_ITEMS_MAX)
    return segments(gsm_fold(text + STOP_NOTICE[lang]))


@cache
def _longest_date_and_time(lang: str) -> tuple[str, str]:
    """The longest date (over a leap year) and time (over a day) texts write in `lang`."""
    tz = ZoneInfo("America/Vancouver")
    noon = [datetime.combine(date(2028, 1, 1) + timedelta(days=d), time(12), tz)
            for d in range(366)]
    minutes = [datetime.combine(date(2028, 1, 3), time(h, m), tz)
               for h in range(24) for m in range(60)]
    return (max((local_times(m, None, tz.key, lang)[0] for m in noon), key=len),
            max((local_times(m, None, tz.key, lang)[1] for m in minutes), key=len))


SAMPLE_LOCAL_START = datetime(2026, 12, 9, 10, 0)
"""A sample appointment's start: Wednesday 9 December, 10:00 in Vancouver."""


def preview(kind: str, lang: str, body: str, accept_ucs2: bool) -> Preview:
    """`body` as `kind`'s text in `lang` for a sample appointment (Cedar Grove, Vancouver),
    its segments and encoding, and what it costs at worst (with the problems, if any)."""
    found = problems(kind, lang, body, accept_ucs2)
    if not renderable(kind, body):
        return Preview("", 0, encoding(body), 0, found)
    mode = "video" if kind.endswith("_remote") else "home" if kind in ("prep_home", "support") \
        else "clinic"
    starts = SAMPLE_LOCAL_START.replace(tzinfo=ZoneInfo("America/Vancouver")).astimezone(UTC)
    ctx = TextContext(lang, "Cedar Grove", "+16045550100", "Main", "1 Main St",
                      "America/Vancouver", starts, "solids_6h_clear_liquids_2h",
                      ends_at=starts + timedelta(hours=2), mode=mode,
                      join_link="https://meet.example.com/cg-1a2b3c",
                      prep_items="Eye covers and headphones are provided.")
    text = render(kind, ctx, template=body)
    return Preview(text, segments(text), encoding(text), worst_case_segments(lang, body), found)

